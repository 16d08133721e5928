package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// IdentityParam is the link parameter that carries a SignIdentity token,
// e.g. https://shop.example/products/x?nudge_id=<token>.
const IdentityParam = "nudge_id"

// tokenVersion prefixes tokens so the format can change without old
// links being misread.
const tokenVersion = "n1."

// identityKey derives the token key from the configured secret, so the
// same secret can sign other things (unsubscribe links) without the
// tokens being interchangeable.
func identityKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("nudge identity token v1"))
	return m.Sum(nil)
}

// SignIdentity makes the nudge_id token that senders put on links in
// emails, so a click identifies the reader on the storefront. The token
// is sealed with AES-256-GCM under a key derived from secret: it is
// authenticated (an HMAC-equivalent tag over email and expiry) and also
// keeps the address unreadable in URLs, referrers and shop analytics.
func SignIdentity(secret []byte, email string, exp time.Time) string {
	aead := identityAEAD(secret)
	email = behavior.NormalizeEmail(email)
	plain := make([]byte, 8, 8+len(email))
	binary.BigEndian.PutUint64(plain, uint64(exp.Unix()))
	plain = append(plain, email...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("web: crypto/rand failed: %v", err)) // crypto/rand never fails on supported platforms
	}
	sealed := aead.Seal(nonce, nonce, plain, []byte(tokenVersion))
	return tokenVersion + base64.RawURLEncoding.EncodeToString(sealed)
}

// VerifyIdentity opens a SignIdentity token and returns its email if the
// token was made with secret and has not expired at now. Errors wrap
// ErrToken or ErrTokenExpired.
func VerifyIdentity(secret []byte, token string, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", fmt.Errorf("%w: no token secret configured", ErrToken)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), tokenVersion)
	if !ok || len(rest) > 700 {
		return "", fmt.Errorf("%w: unknown format", ErrToken)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrToken, err)
	}
	aead := identityAEAD(secret)
	if len(sealed) < aead.NonceSize()+aead.Overhead()+8 {
		return "", fmt.Errorf("%w: too short", ErrToken)
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(tokenVersion))
	if err != nil {
		return "", fmt.Errorf("%w: signature does not match", ErrToken)
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(plain[:8])), 0)
	if now.After(exp) {
		return "", fmt.Errorf("%w: expired at %s", ErrTokenExpired, exp.UTC().Format(time.RFC3339))
	}
	email := string(plain[8:])
	if !looksLikeEmail(email) {
		return "", fmt.Errorf("%w: no address inside", ErrToken)
	}
	return email, nil
}

func identityAEAD(secret []byte) cipher.AEAD {
	block, err := aes.NewCipher(identityKey(secret)) // a 32-byte key never fails
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}
