package web

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// sampleProduct is the product every sample names, in Segment's
// e-commerce spec shape.
func sampleProduct() map[string]any {
	return map[string]any{
		"product_id": "507f1f77bcf86cd799439011",
		"sku":        "G-32",
		"category":   "Games",
		"name":       "Monopoly: 3rd Edition",
		"brand":      "Hasbro",
		"variant":    "200 pieces",
		"price":      json.Number("18.99"),
		"quantity":   1,
		"currency":   "USD",
		"url":        "https://www.example.com/product/path",
		"image_url":  "https://www.example.com/product/path.jpg",
	}
}

// sampleCalls builds the call each sample event name sends.
func sampleCall(event string) (path string, m map[string]any, ok bool) {
	p := sampleProduct()
	switch event {
	case string(behavior.ProductViewed):
		return "/v1/track", map[string]any{"type": "track", "event": "Product Viewed", "properties": p}, true
	case string(behavior.CollectionViewed):
		return "/v1/track", map[string]any{"type": "track", "event": "Product List Viewed", "properties": map[string]any{
			"list_id": "hot_deals_1", "category": "Deals", "products": []any{p},
		}}, true
	case string(behavior.Searched):
		return "/v1/track", map[string]any{"type": "track", "event": "Products Searched", "properties": map[string]any{"query": "blue roses"}}, true
	case string(behavior.CartUpdated):
		q := sampleProduct()
		q["cart_id"] = "skdjsidjsdkdj29j"
		return "/v1/track", map[string]any{"type": "track", "event": "Product Added", "properties": q}, true
	case string(behavior.CheckoutStarted):
		return "/v1/track", map[string]any{"type": "track", "event": "Checkout Started", "properties": map[string]any{
			"checkout_id": "fksdjfsdjfisjf9sdfjsd9f", "value": json.Number("18.99"), "currency": "USD", "products": []any{p},
		}}, true
	case string(behavior.OrderPlaced):
		return "/v1/track", map[string]any{"type": "track", "event": "Order Completed", "properties": map[string]any{
			"order_id": "50314b8e9bcf000000000000", "revenue": json.Number("18.99"), "total": json.Number("21.99"),
			"currency": "USD", "products": []any{p},
		}}, true
	case string(behavior.PageViewed):
		return "/v1/page", map[string]any{"type": "page", "name": "Monopoly: 3rd Edition", "properties": map[string]any{
			"url": p["url"], "path": "/product/path", "title": "Monopoly: 3rd Edition", "seconds": 42,
		}}, true
	case "identify", string(behavior.CustomerUpdated):
		return "/v1/identify", map[string]any{"type": "identify", "traits": map[string]any{"first_name": "Peter", "last_name": "Gibbons"}}, true
	}
	return "", nil, false
}

// SampleEvents lists the event names Sample accepts.
func SampleEvents() []string {
	ev := []string{
		string(behavior.PageViewed), string(behavior.ProductViewed), string(behavior.CollectionViewed),
		string(behavior.Searched), string(behavior.CartUpdated), string(behavior.CheckoutStarted),
		string(behavior.OrderPlaced), "identify",
	}
	sort.Strings(ev)
	return ev
}

// Sample builds a realistic Segment call for `nudge trigger web EVENT`:
// the path to POST it to (relative to the server's base URL), the JSON
// body and the headers (basic auth with writeKey). With an email, the call
// carries it so the record lands on that profile; every call gets a fresh
// messageId and anonymousId, so each trigger stores a new record.
func Sample(event, email, writeKey string) (path string, body []byte, h http.Header, err error) {
	path, m, ok := sampleCall(strings.TrimSpace(event))
	if !ok {
		return "", nil, nil, fmt.Errorf("%w %q; one of %s", ErrUnknownSample, event, strings.Join(SampleEvents(), ", "))
	}
	m["messageId"] = "nudge-trigger-" + randomHex(12)
	m["anonymousId"] = "anon-" + randomHex(8)
	m["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	ctx := map[string]any{
		"library":   map[string]any{"name": "nudge trigger", "version": "1"},
		"userAgent": "nudge-trigger/1",
		"page":      map[string]any{"url": "https://www.example.com/product/path", "title": "Monopoly: 3rd Edition"},
	}
	if email != "" {
		if !looksLikeEmail(email) {
			return "", nil, nil, fmt.Errorf("web: sample: %q is not an email address", email)
		}
		ctx["traits"] = map[string]any{"email": email}
		if t, ok := m["traits"].(map[string]any); ok {
			t["email"] = email
		}
	}
	m["context"] = ctx
	body, err = json.Marshal(m)
	if err != nil {
		return "", nil, nil, fmt.Errorf("web: sample: %w", err)
	}
	h = http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(writeKey+":")))
	h.Set("User-Agent", "nudge-trigger/1")
	return path, body, h, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("web: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
