package woocommerce

import (
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nudge-email/nudge/connectors/jsonfield"
)

// samples are the payloads Sample starts from: the wc/v3 REST examples of
// PROTOCOLS §2.4 (order) and the same docs' customer and product.
//
//go:embed testdata/woocommerce_order_created.json testdata/customer_created.json testdata/product_updated.json
var samples embed.FS

func sampleFiles() map[string]string {
	return map[string]string{
		"order.created":    "woocommerce_order_created.json",
		"order.updated":    "woocommerce_order_created.json",
		"customer.created": "customer_created.json",
		"customer.updated": "customer_created.json",
		"product.updated":  "product_updated.json",
	}
}

// SampleTopics lists the topics Sample can build, sorted.
func SampleTopics() []string {
	var out []string
	for t := range sampleFiles() {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// SampleEmail is used when Sample is given no email.
const SampleEmail = "sample@example.com"

// SampleSource is the X-WC-Webhook-Source of sample deliveries.
const SampleSource = "https://example.com/"

// Sample builds a realistic delivery of topic for `nudge trigger`: the
// body from WooCommerce's REST examples with the billing email set to
// email, dates set to now and a fresh order id and key, and the
// X-WC-Webhook-* headers without the signature, which the caller adds with
// Sign and its configured secret.
//
// order.created is a pending order (payment not completed), which
// normalizes to checkout_started: the abandoned-checkout case.
// order.updated is the same kind of order processing and paid, which
// normalizes to order_placed and order_paid. Orders and customers carry
// the Mailchimp opt-in meta, so the consent policy lets a triggered
// journey send. The customer id is derived from the email, so triggers
// for one address land on one profile.
func Sample(topic, email string, now time.Time) ([]byte, http.Header, error) {
	topic = strings.ToLower(strings.TrimSpace(topic))
	file, ok := sampleFiles()[topic]
	if !ok {
		return nil, nil, fmt.Errorf("woocommerce: sample: unknown topic %q (have %s)", topic, strings.Join(SampleTopics(), ", "))
	}
	raw, err := samples.ReadFile("testdata/" + file)
	if err != nil {
		return nil, nil, fmt.Errorf("woocommerce: sample: %w", err)
	}
	m, err := jsonfield.DecodeObject(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("woocommerce: sample %s: %w", file, err)
	}
	if email = strings.TrimSpace(email); email == "" {
		email = SampleEmail
	}
	now = now.UTC()
	// The shop's time zone is unknown here, so local times equal GMT.
	stamp := now.Format("2006-01-02T15:04:05")
	earlier := now.Add(-10 * time.Minute).Format("2006-01-02T15:04:05")
	optIn := []any{map[string]any{"id": json.Number("1"), "key": "mailchimp_woocommerce_is_subscribed", "value": "1"}}
	custID := derivedID(email)
	if b, ok := m["billing"].(map[string]any); ok {
		b["email"], b["first_name"], b["last_name"] = email, "Sam", "Sample"
	}
	if s, ok := m["shipping"].(map[string]any); ok {
		s["first_name"], s["last_name"] = "Sam", "Sample"
	}
	resource, event, _ := strings.Cut(topic, ".")
	switch resource {
	case "order":
		oid := randomID()
		m["id"], m["number"] = oid, oid.String()
		m["order_key"] = "wc_order_" + randHex(7)[:13]
		m["customer_id"] = custID
		m["meta_data"] = optIn
		m["created_via"] = "checkout"
		m["date_created"], m["date_created_gmt"] = earlier, earlier
		m["date_modified"], m["date_modified_gmt"] = stamp, stamp
		m["date_completed"], m["date_completed_gmt"] = nil, nil
		if event == "created" {
			m["status"] = "pending"
			m["date_paid"], m["date_paid_gmt"] = nil, nil
		} else {
			m["status"] = "processing"
			m["date_paid"], m["date_paid_gmt"] = stamp, stamp
		}
		if links, ok := m["_links"].(map[string]any); ok {
			links["self"] = []any{map[string]any{"href": SampleSource + "wp-json/wc/v3/orders/" + oid.String()}}
		}
	case "customer":
		m["id"], m["email"], m["first_name"], m["last_name"] = custID, email, "Sam", "Sample"
		m["username"] = strings.Split(email, "@")[0]
		m["meta_data"] = optIn
		m["date_created"], m["date_created_gmt"] = earlier, earlier
		m["date_modified"], m["date_modified_gmt"] = stamp, stamp
	case "product":
		m["date_modified"], m["date_modified_gmt"] = stamp, stamp
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("woocommerce: sample: %w", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "WooCommerce/9.0.0 Hookshot (WordPress/6.5.0)")
	h.Set(HeaderSource, SampleSource)
	h.Set(HeaderTopic, topic)
	h.Set(HeaderResource, resource)
	h.Set(HeaderEvent, event)
	h.Set(HeaderWebhookID, "1")
	h.Set(HeaderDeliveryID, randHex(16))
	return body, h, nil
}

// randomID returns a fresh order id; WooCommerce ids are post ids, far
// below 2^53, but random enough here that triggers never collide.
func randomID() json.Number {
	n, err := rand.Int(rand.Reader, big.NewInt(1e9))
	if err != nil {
		n = big.NewInt(time.Now().UnixNano() % 1e9)
	}
	return json.Number(fmt.Sprint(1e6 + n.Int64()))
}

// derivedID returns a stable customer id for an email address.
func derivedID(email string) json.Number {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return json.Number(fmt.Sprint(1000 + binary.BigEndian.Uint64(sum[:8])%1e8))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
