package config

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
)

// redactedMark replaces a set secret in printed configuration.
const redactedMark = "***"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redactedMark
}

// Redacted returns a copy of c with every secret that is set replaced by
// "***", for printing and for the admin page. Empty secrets stay empty so
// a reader can tell "unset" from "set".
func (c Config) Redacted() Config {
	c.Admin = c.Admin.redacted()
	c.Stores = append([]Store(nil), c.Stores...)
	for i := range c.Stores {
		c.Stores[i] = c.Stores[i].redacted()
	}
	c.Stripe = c.Stripe.redacted()
	c.Tracking = c.Tracking.redacted()
	c.Email.SendGrid = c.Email.SendGrid.redacted()
	c.Email.Mailgun = c.Email.Mailgun.redacted()
	c.Secret = redact(c.Secret)
	return c
}

func (a Admin) redacted() Admin { a.Token = redact(a.Token); return a }

func (s Store) redacted() Store {
	s.WebhookSecret = redact(s.WebhookSecret)
	s.PreviousWebhookSecret = redact(s.PreviousWebhookSecret)
	return s
}

func (s Stripe) redacted() Stripe {
	s.WebhookSecret = redact(s.WebhookSecret)
	s.PreviousWebhookSecret = redact(s.PreviousWebhookSecret)
	return s
}

// redacted hides the write key: although browsers see it, it admits
// events into the store, so logs and dumps should not spread it further.
func (t Tracking) redacted() Tracking { t.WriteKey = redact(t.WriteKey); return t }

// redacted keeps the webhook public key: it is public by nature.
func (s SendGrid) redacted() SendGrid { s.APIKey = redact(s.APIKey); return s }

func (m Mailgun) redacted() Mailgun {
	m.APIKey = redact(m.APIKey)
	m.WebhookSigningKey = redact(m.WebhookSigningKey)
	return m
}

// The methods below make fmt (%v, %+v, %#v, %s), log/slog and
// encoding/json print the redacted form of every secret-holding type, so a
// debug print or an error that wraps a config value cannot leak a key.
// Each converts to a method-less copy of its type to format the fields
// without recursing into itself.

// String prints the redacted configuration.
func (c Config) String() string { type plain Config; return fmt.Sprintf("%+v", plain(c.Redacted())) }

// GoString prints the redacted configuration for %#v.
func (c Config) GoString() string {
	type plain Config
	return fmt.Sprintf("%#v", plain(c.Redacted()))
}

// LogValue logs the redacted configuration.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON encodes the redacted configuration.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return json.Marshal(plain(c.Redacted()))
}

// String prints the admin section with the token redacted.
func (a Admin) String() string { type plain Admin; return fmt.Sprintf("%+v", plain(a.redacted())) }

// GoString is String for %#v.
func (a Admin) GoString() string { type plain Admin; return fmt.Sprintf("%#v", plain(a.redacted())) }

// LogValue logs the redacted form.
func (a Admin) LogValue() slog.Value { return slog.StringValue(a.String()) }

// MarshalJSON encodes the redacted form.
func (a Admin) MarshalJSON() ([]byte, error) {
	type plain Admin
	return json.Marshal(plain(a.redacted()))
}

// String prints the store with its secrets redacted.
func (s Store) String() string { type plain Store; return fmt.Sprintf("%+v", plain(s.redacted())) }

// GoString is String for %#v.
func (s Store) GoString() string { type plain Store; return fmt.Sprintf("%#v", plain(s.redacted())) }

// LogValue logs the redacted form.
func (s Store) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes the redacted form.
func (s Store) MarshalJSON() ([]byte, error) {
	type plain Store
	return json.Marshal(plain(s.redacted()))
}

// String prints the Stripe section with its secrets redacted.
func (s Stripe) String() string { type plain Stripe; return fmt.Sprintf("%+v", plain(s.redacted())) }

// GoString is String for %#v.
func (s Stripe) GoString() string { type plain Stripe; return fmt.Sprintf("%#v", plain(s.redacted())) }

// LogValue logs the redacted form.
func (s Stripe) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes the redacted form.
func (s Stripe) MarshalJSON() ([]byte, error) {
	type plain Stripe
	return json.Marshal(plain(s.redacted()))
}

// String prints the tracking section with the write key redacted.
func (t Tracking) String() string {
	type plain Tracking
	return fmt.Sprintf("%+v", plain(t.redacted()))
}

// GoString is String for %#v.
func (t Tracking) GoString() string {
	type plain Tracking
	return fmt.Sprintf("%#v", plain(t.redacted()))
}

// LogValue logs the redacted form.
func (t Tracking) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalJSON encodes the redacted form.
func (t Tracking) MarshalJSON() ([]byte, error) {
	type plain Tracking
	return json.Marshal(plain(t.redacted()))
}

// String prints the SendGrid section with the API key redacted.
func (s SendGrid) String() string {
	type plain SendGrid
	return fmt.Sprintf("%+v", plain(s.redacted()))
}

// GoString is String for %#v.
func (s SendGrid) GoString() string {
	type plain SendGrid
	return fmt.Sprintf("%#v", plain(s.redacted()))
}

// LogValue logs the redacted form.
func (s SendGrid) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes the redacted form.
func (s SendGrid) MarshalJSON() ([]byte, error) {
	type plain SendGrid
	return json.Marshal(plain(s.redacted()))
}

// String prints the Mailgun section with its keys redacted.
func (m Mailgun) String() string { type plain Mailgun; return fmt.Sprintf("%+v", plain(m.redacted())) }

// GoString is String for %#v.
func (m Mailgun) GoString() string {
	type plain Mailgun
	return fmt.Sprintf("%#v", plain(m.redacted()))
}

// LogValue logs the redacted form.
func (m Mailgun) LogValue() slog.Value { return slog.StringValue(m.String()) }

// MarshalJSON encodes the redacted form.
func (m Mailgun) MarshalJSON() ([]byte, error) {
	type plain Mailgun
	return json.Marshal(plain(m.redacted()))
}

// tokenSecretLabel separates the derived token key from any other use of
// the admin token; changing it would invalidate every link already sent.
const tokenSecretLabel = "nudge/v1/token-secret"

// SecretForTokens is the key that signs unsubscribe and identify tokens:
// Secret when set, else an HMAC of a fixed label under the admin token, so
// links in mail already sent keep working across restarts. Validation
// guarantees that one of the two is set.
func (c *Config) SecretForTokens() []byte {
	if c.Secret != "" {
		return []byte(c.Secret)
	}
	m := hmac.New(sha256.New, []byte(c.Admin.Token))
	m.Write([]byte(tokenSecretLabel))
	return m.Sum(nil)
}
