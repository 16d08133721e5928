package shopify

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

// samples are the fixture payloads Sample starts from: the shopify-api-js
// REST samples of PROTOCOLS §1, plus a cart and a consent update written
// from the documented shapes.
//
//go:embed testdata/shopify_checkouts_create.json testdata/shopify_orders_create.json
//go:embed testdata/shopify_customers_create.json testdata/shopify_refunds_create.json
//go:embed testdata/shopify_products_update.json testdata/shopify_inventory_levels_update.json
//go:embed testdata/carts_update.json testdata/customers_email_marketing_consent_update.json
var samples embed.FS

// sampleFiles maps each topic Sample supports to its base payload.
func sampleFiles() map[string]string {
	return map[string]string{
		"checkouts/create": "shopify_checkouts_create.json",
		"checkouts/update": "shopify_checkouts_create.json",
		"carts/create":     "carts_update.json",
		"carts/update":     "carts_update.json",
		"orders/create":    "shopify_orders_create.json",
		"orders/paid":      "shopify_orders_create.json",
		"orders/fulfilled": "shopify_orders_create.json",
		"orders/cancelled": "shopify_orders_create.json",
		"refunds/create":   "shopify_refunds_create.json",
		"customers/create": "shopify_customers_create.json",
		"customers/update": "shopify_customers_create.json",
		"customers_email_marketing_consent/update": "customers_email_marketing_consent_update.json",
		"products/update":                          "shopify_products_update.json",
		"inventory_levels/update":                  "shopify_inventory_levels_update.json",
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

// Sample builds a realistic delivery of topic for `nudge trigger`: the
// body, from Shopify's own sample payloads with email set to email (carts,
// refunds, products and inventory levels name nobody and ignore it),
// timestamps set to now and fresh order, checkout and cart ids and tokens,
// so repeated triggers are distinct events; and the Shopify delivery
// headers with a new event id, but without the HMAC, which the caller adds
// with Sign and its configured secret.
//
// The customer id is derived from the email, so triggers for one address
// land on one profile and triggers for different addresses never merge.
// Checkouts, orders and customers are marked as consenting to marketing,
// so a triggered journey is not stopped by the consent policy.
func Sample(topic, email string, now time.Time) ([]byte, http.Header, error) {
	topic = strings.ToLower(strings.TrimSpace(topic))
	file, ok := sampleFiles()[topic]
	if !ok {
		return nil, nil, fmt.Errorf("shopify: sample: unknown topic %q (have %s)", topic, strings.Join(SampleTopics(), ", "))
	}
	raw, err := samples.ReadFile("testdata/" + file)
	if err != nil {
		return nil, nil, fmt.Errorf("shopify: sample: %w", err)
	}
	m, err := jsonfield.DecodeObject(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("shopify: sample %s: %w", file, err)
	}
	if email = strings.TrimSpace(email); email == "" {
		email = SampleEmail
	}
	now = now.UTC()
	stamp := now.Format(time.RFC3339)
	earlier := now.Add(-10 * time.Minute).Format(time.RFC3339)
	custID := derivedID(email)
	ids := map[string]json.Number{}
	// Swap the fixture's customer for one derived from the email,
	// wherever the payload mentions it.
	if c, ok := m["customer"].(map[string]any); ok {
		if old, ok := c["id"].(json.Number); ok {
			ids[old.String()] = custID
		}
		c["email"] = email
		c["first_name"], c["last_name"] = "Sam", "Sample"
		c["admin_graphql_api_id"] = "gid://shopify/Customer/" + custID.String()
		c["email_marketing_consent"] = map[string]any{"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": earlier}
	}

	for _, k := range []string{"billing_address", "shipping_address"} {
		if a, ok := m[k].(map[string]any); ok {
			a["first_name"], a["last_name"], a["name"] = "Sam", "Sample", "Sam Sample"
		}
	}

	switch {
	case strings.HasPrefix(topic, "checkouts/"):
		tok, cartTok := randHex(16), randHex(16)
		if old, ok := m["token"].(string); ok {
			if u, ok := m["abandoned_checkout_url"].(string); ok {
				m["abandoned_checkout_url"] = strings.ReplaceAll(u, old, tok)
			}
		}
		freshen(m, ids, "id")
		m["token"], m["cart_token"], m["email"] = tok, cartTok, email
		m["buyer_accepts_marketing"] = true
		m["created_at"], m["updated_at"], m["completed_at"] = earlier, stamp, nil
		if topic == "checkouts/create" {
			m["created_at"] = stamp
		}
	case strings.HasPrefix(topic, "carts/"):
		tok := randHex(16)
		m["id"], m["token"] = tok, tok
		m["created_at"], m["updated_at"] = earlier, stamp
	case strings.HasPrefix(topic, "orders/"):
		freshen(m, ids, "id", "checkout_id")
		m["name"] = "#" + randDigits(5)
		m["email"], m["contact_email"] = email, email
		m["checkout_token"], m["cart_token"], m["token"] = randHex(16), randHex(16), randHex(16)
		m["buyer_accepts_marketing"] = true
		m["created_at"], m["processed_at"], m["updated_at"] = earlier, earlier, stamp
		m["refunds"] = []any{}
		switch topic {
		case "orders/create":
			m["created_at"], m["processed_at"] = stamp, stamp
		case "orders/paid":
			m["financial_status"] = "paid"
		case "orders/fulfilled":
			m["financial_status"], m["fulfillment_status"] = "paid", "fulfilled"
		case "orders/cancelled":
			m["financial_status"], m["cancelled_at"], m["cancel_reason"] = "voided", stamp, "customer"
		}
	case topic == "refunds/create":
		freshen(m, ids, "id", "order_id")
		m["created_at"], m["processed_at"] = stamp, stamp
	case strings.HasPrefix(topic, "customers/"):
		if old, ok := m["id"].(json.Number); ok {
			ids[old.String()] = custID
		}
		m["email"], m["first_name"], m["last_name"] = email, "Sam", "Sample"
		m["admin_graphql_api_id"] = "gid://shopify/Customer/" + custID.String()
		m["created_at"], m["updated_at"] = earlier, stamp
		m["email_marketing_consent"] = map[string]any{"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": stamp}
	case topic == "customers_email_marketing_consent/update":
		m["customer_id"], m["email_address"] = custID, email
		if c, ok := m["email_marketing_consent"].(map[string]any); ok {
			c["consent_updated_at"] = stamp
		}
	case topic == "products/update":
		m["updated_at"] = stamp
	case topic == "inventory_levels/update":
		m["updated_at"] = stamp
	}
	m = replaceIDs(m, ids).(map[string]any)

	body, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("shopify: sample: %w", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderTopic, topic)
	h.Set(HeaderShopDomain, "nudge-sample.myshopify.com")
	h.Set(HeaderAPIVersion, "2024-04")
	h.Set(HeaderWebhookID, uuid())
	h.Set(HeaderEventID, uuid())
	h.Set(HeaderTriggeredAt, now.Format(time.RFC3339Nano))
	return body, h, nil
}

// freshen gives the named top-level ids new random values, recording the
// change in ids so that references elsewhere in the payload follow.
func freshen(m map[string]any, ids map[string]json.Number, keys ...string) {
	for _, k := range keys {
		n := randomID()
		if old, ok := m[k].(json.Number); ok {
			ids[old.String()] = n
		}
		m[k] = n
	}
}

// replaceIDs rewrites every number in v that ids maps to a new value.
func replaceIDs(v any, ids map[string]json.Number) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = replaceIDs(e, ids)
		}
	case []any:
		for i, e := range x {
			x[i] = replaceIDs(e, ids)
		}
	case json.Number:
		if n, ok := ids[x.String()]; ok {
			return n
		}
	}
	return v
}

// idBase is 2^53+1: sample ids lie above it, as real Shopify ids
// increasingly do, so anything that passes them through a float64 breaks
// visibly.
const idBase = 1<<53 + 1

// randomID returns a fresh id above 2^53.
func randomID() json.Number {
	n, err := rand.Int(rand.Reader, big.NewInt(1e15))
	if err != nil {
		n = big.NewInt(time.Now().UnixNano() % 1e15)
	}
	return json.Number(fmt.Sprint(idBase + n.Int64()))
}

// derivedID returns a stable id above 2^53 for an email address.
func derivedID(email string) json.Number {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return json.Number(fmt.Sprint(idBase + int64(binary.BigEndian.Uint64(sum[:8])%1e15)))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

func randDigits(n int) string {
	var b strings.Builder
	for _, c := range randHex(n) {
		b.WriteByte('0' + byte(c)%10)
	}
	return b.String()[:n]
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
