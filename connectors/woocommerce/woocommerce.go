// Package woocommerce receives WooCommerce core webhooks: it answers the
// unsigned creation ping, verifies the HMAC and turns orders, customers
// and products into behavior records.
//
// WooCommerce builds a payload when it delivers, not when the event
// happens, and its Delivery-ID is not unique, so records are keyed on the
// resource id and its date_modified_gmt, and order lifecycle records on
// the order id alone (see Normalize).
package woocommerce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/nudge-email/nudge/connectors"
)

// Name is the source name of this connector.
const Name = "woocommerce"

// Delivery headers (class-wc-webhook.php deliver()).
const (
	HeaderSource     = "X-WC-Webhook-Source"
	HeaderTopic      = "X-WC-Webhook-Topic"
	HeaderResource   = "X-WC-Webhook-Resource"
	HeaderEvent      = "X-WC-Webhook-Event"
	HeaderSignature  = "X-WC-Webhook-Signature"
	HeaderWebhookID  = "X-WC-Webhook-ID"
	HeaderDeliveryID = "X-WC-Webhook-Delivery-ID"
)

// Config configures one WooCommerce store.
type Config struct {
	// StoreID is nudge's id for the store (the {store} of the webhook
	// route); it becomes Record.Store and namespaces customer ids.
	StoreID string
	// Secret is the webhook's secret as shown in WooCommerce. It may be
	// stored HTML-entity-encoded ("a&amp;b"); WooCommerce signs with the
	// decoded form, and so does Verify.
	Secret string
	// PreviousSecret is also accepted while a changed secret phases out.
	PreviousSecret string
	// Currency is the shop's currency, used where a payload names none
	// (customers, products).
	Currency string
	// StoreURL is the shop's base URL, e.g. "https://example.com"; when
	// set, pending orders get a pay-for-order recovery URL.
	StoreURL string
}

// Receiver verifies and normalizes one store's WooCommerce webhooks. It is
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
	_ connectors.Pinger   = (*Receiver)(nil)
	_ connectors.Topicer  = (*Receiver)(nil)
)

// Name returns "woocommerce".
func (r *Receiver) Name() string { return Name }

// Topic returns the delivery's topic, e.g. "order.updated".
func (r *Receiver) Topic(h http.Header) string {
	return strings.ToLower(strings.TrimSpace(h.Get(HeaderTopic)))
}

// pingBody is what deliver_ping() posts when a webhook is created or
// activated.
var pingBody = regexp.MustCompile(`^webhook_id=[0-9]+$`)

// IsPing reports whether the request is WooCommerce's unsigned creation
// ping: a form body "webhook_id=<digits>" with no signature and no topic.
// The server must answer it exactly 200 and store nothing, or WooCommerce
// leaves the webhook pending.
func (r *Receiver) IsPing(h http.Header, body []byte) bool {
	if h.Get(HeaderSignature) != "" || h.Get(HeaderTopic) != "" {
		return false
	}
	return pingBody.Match([]byte(strings.TrimSpace(string(body))))
}

// Verify checks the base64 HMAC-SHA256 of the raw body, keyed with the
// entity-decoded current or previous secret, in constant time. WooCommerce
// signs no timestamp, so nothing can be stale.
func (r *Receiver) Verify(h http.Header, body []byte, _ time.Time) error {
	got := strings.TrimSpace(h.Get(HeaderSignature))
	if got == "" {
		return fmt.Errorf("woocommerce: verify: no %s header: %w", HeaderSignature, connectors.ErrSignature)
	}
	mac, err := base64.StdEncoding.DecodeString(got)
	// DecodeString skips CR and LF anywhere and ignores stray padding bits,
	// so one digest has many spellings it would accept; only the canonical
	// one, which the store sends, is.
	if err != nil || len(mac) != sha256.Size || base64.StdEncoding.EncodeToString(mac) != got {
		return fmt.Errorf("woocommerce: verify: %s is not a base64 SHA-256 digest: %w", HeaderSignature, connectors.ErrSignature)
	}
	if r.cfg.Secret == "" && r.cfg.PreviousSecret == "" {
		return fmt.Errorf("woocommerce: verify: store %q has no webhook secret: %w", r.cfg.StoreID, connectors.ErrSignature)
	}
	for _, secret := range []string{r.cfg.Secret, r.cfg.PreviousSecret} {
		if secret != "" && hmac.Equal(mac, digest(DecodeSecret(secret), body)) {
			return nil
		}
	}
	return fmt.Errorf("woocommerce: verify: %w", connectors.ErrSignature)
}

// Sign returns the X-WC-Webhook-Signature value for body under secret, as
// WooCommerce computes it (with the entity-decoded secret). Tests and
// `nudge trigger` use it.
func Sign(secret string, body []byte) string {
	return base64.StdEncoding.EncodeToString(digest(DecodeSecret(secret), body))
}

// DecodeSecret undoes the HTML entities WordPress may store a secret
// with, as wp_specialchars_decode($secret, ENT_QUOTES) does before
// WooCommerce signs. It decodes in one pass, so "&amp;lt;" becomes "&lt;",
// not "<".
func DecodeSecret(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return strings.NewReplacer(
		"&amp;", "&", "&#038;", "&", "&#38;", "&", "&#x26;", "&", "&#X26;", "&",
		"&lt;", "<", "&#060;", "<", "&#60;", "<", "&#x3c;", "<", "&#x3C;", "<",
		"&gt;", ">", "&#062;", ">", "&#62;", ">", "&#x3e;", ">", "&#x3E;", ">",
		"&quot;", `"`, "&#034;", `"`, "&#34;", `"`, "&#x22;", `"`,
		"&#039;", "'", "&#39;", "'", "&#x27;", "'",
	).Replace(s)
}

func digest(key string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return m.Sum(nil)
}
