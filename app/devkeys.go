package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Dev keys let `nudge trigger sendgrid …` and `nudge trigger mailgun …`
// work against a fresh install before the shop has configured the real
// keys: the server verifies with a key pair kept in the data dir. Real
// provider events never verify against it, which is the point: nothing
// unsigned is ever accepted.
const (
	devSendGridKeyFile = "dev-sendgrid-webhook-key.pem"
	devMailgunKeyFile  = "dev-mailgun-signing-key"
)

// DevSendGridKey loads or creates the dev ECDSA P-256 key in dataDir and
// returns it with its public key as base64 DER (SendGrid's format).
func DevSendGridKey(dataDir string, create bool) (*ecdsa.PrivateKey, string, error) {
	path := filepath.Join(dataDir, devSendGridKeyFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		block, _ := pem.Decode(raw)
		if block == nil {
			return nil, "", fmt.Errorf("dev sendgrid key %s: not PEM", path)
		}
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, "", fmt.Errorf("dev sendgrid key %s: %w", path, err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return nil, "", err
		}
		return k, base64.StdEncoding.EncodeToString(pub), nil
	case !errors.Is(err, os.ErrNotExist) || !create:
		return nil, "", fmt.Errorf("dev sendgrid key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, "", err
	}
	return k, base64.StdEncoding.EncodeToString(pub), nil
}

// DevMailgunKey loads or creates the dev Mailgun webhook signing key.
func DevMailgunKey(dataDir string, create bool) (string, error) {
	path := filepath.Join(dataDir, devMailgunKeyFile)
	raw, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(raw)), nil
	}
	if !errors.Is(err, os.ErrNotExist) || !create {
		return "", fmt.Errorf("dev mailgun key: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	key := hex.EncodeToString(b)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", err
	}
	return key, nil
}
