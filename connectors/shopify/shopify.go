// Package shopify receives Shopify webhooks: it verifies their HMAC and
// turns checkouts, carts, orders, refunds, customers, consent changes and
// catalog updates into behavior records.
//
// Shopify sends no "abandoned checkout" event; abandonment is the absence
// of an order after a checkout_started record, which the rules express
// with a wait and an order_placed exit. That is why completed checkouts
// are ignored here (see Normalize) and the order webhooks end journeys.
package shopify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nudge-email/nudge/connectors"
)

// Name is the source name of this connector.
const Name = "shopify"

// Delivery headers. The newer Events delivery sends the same names
// without the "X-" prefix; both spellings are accepted.
const (
	HeaderHmac        = "X-Shopify-Hmac-Sha256"
	HeaderTopic       = "X-Shopify-Topic"
	HeaderShopDomain  = "X-Shopify-Shop-Domain"
	HeaderAPIVersion  = "X-Shopify-API-Version"
	HeaderWebhookID   = "X-Shopify-Webhook-Id"
	HeaderEventID     = "X-Shopify-Event-Id"
	HeaderTriggeredAt = "X-Shopify-Triggered-At"
)

// Config configures one Shopify store.
type Config struct {
	// StoreID is nudge's id for the store (the {store} of the webhook
	// route); it becomes Record.Store and namespaces customer ids.
	StoreID string
	// Secret is the key Shopify signs with: the app's client secret, or
	// the key shown under Settings > Notifications > Webhooks for
	// webhooks a merchant created there.
	Secret string
	// PreviousSecret is also accepted while a rotated secret phases out
	// (Shopify keeps signing with the old one for up to an hour).
	PreviousSecret string
	// Currency is the shop's currency, used where a payload names none
	// (carts, products, inventory).
	Currency string
	// StoreURL is the storefront's base URL, e.g. "https://example.com";
	// when set, catalog items get URL = StoreURL + "/products/" + handle.
	StoreURL string
}

// Receiver verifies and normalizes one store's Shopify webhooks. It is
// safe for concurrent use.
type Receiver struct {
	cfg Config
}

// New returns a Receiver for cfg.
func New(cfg Config) *Receiver {
	cfg.StoreURL = strings.TrimRight(cfg.StoreURL, "/")
	return &Receiver{cfg: cfg}
}

var (
	_ connectors.Receiver = (*Receiver)(nil)
	_ connectors.Topicer  = (*Receiver)(nil)
)

// Name returns "shopify".
func (r *Receiver) Name() string { return Name }

// Topic returns the delivery's topic, e.g. "orders/create".
func (r *Receiver) Topic(h http.Header) string {
	return strings.ToLower(strings.TrimSpace(header(h, HeaderTopic)))
}

// Verify checks the base64 HMAC-SHA256 of the raw body against the current
// and the previous secret, in constant time. Shopify signs no timestamp,
// so there is nothing to be stale: retries legitimately carry the original
// payload for up to four hours.
func (r *Receiver) Verify(h http.Header, body []byte, _ time.Time) error {
	got := strings.TrimSpace(header(h, HeaderHmac))
	if got == "" {
		return fmt.Errorf("shopify: verify: no %s header: %w", HeaderHmac, connectors.ErrSignature)
	}
	mac, err := base64.StdEncoding.DecodeString(got)
	// DecodeString skips CR and LF anywhere and ignores stray padding bits,
	// so one digest has many spellings it would accept; only the canonical
	// one, which the store sends, is.
	if err != nil || len(mac) != sha256.Size || base64.StdEncoding.EncodeToString(mac) != got {
		return fmt.Errorf("shopify: verify: %s is not a base64 SHA-256 digest: %w", HeaderHmac, connectors.ErrSignature)
	}
	if r.cfg.Secret == "" && r.cfg.PreviousSecret == "" {
		return fmt.Errorf("shopify: verify: store %q has no webhook secret: %w", r.cfg.StoreID, connectors.ErrSignature)
	}
	for _, secret := range []string{r.cfg.Secret, r.cfg.PreviousSecret} {
		if secret != "" && hmac.Equal(mac, digest(secret, body)) {
			return nil
		}
	}
	return fmt.Errorf("shopify: verify: %w", connectors.ErrSignature)
}

// Sign returns the X-Shopify-Hmac-Sha256 value for body under secret, as
// Shopify computes it. Tests and `nudge trigger` use it.
func Sign(secret string, body []byte) string {
	return base64.StdEncoding.EncodeToString(digest(secret, body))
}

func digest(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// header reads a Shopify header in either its "X-Shopify-…" or its
// un-prefixed "Shopify-…" spelling.
func header(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	return h.Get(strings.TrimPrefix(name, "X-"))
}
