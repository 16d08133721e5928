package proof

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/storage"
)

// mutateShopify builds a signed Shopify sample of topic for email after
// fn edits its decoded body.
func mutateShopify(t *testing.T, topic, email string, fn func(m map[string]any)) ([]byte, http.Header) {
	t.Helper()
	body, h, err := shopify.Sample(topic, email, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	body = buf.Bytes()
	h.Set(shopify.HeaderHmac, shopify.Sign(testSecret, body))
	return body, h
}

func signedShopify(topic string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(shopify.HeaderTopic, topic)
	h.Set(shopify.HeaderEventID, fmt.Sprintf("hostile-%d", time.Now().UnixNano()))
	h.Set(shopify.HeaderTriggeredAt, time.Now().UTC().Format(time.RFC3339))
	h.Set(shopify.HeaderHmac, shopify.Sign(testSecret, body))
	return h
}

func trackingHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(testWriteKey+":")))
	return h
}

func lineItems(n int, price string) []any {
	items := make([]any, n)
	for i := range items {
		items[i] = map[string]any{"id": i + 1, "product_id": 1000 + i, "variant_id": 5000 + i, "title": fmt.Sprintf("P%d", i), "price": price, "quantity": 1}
	}
	return items
}

// outcome classes a hostile input may end in.
const (
	reject   = "4xx"      // a clear 4xx, nothing stored
	either   = "200|4xx"  // both are acceptable (the check says what is safe about a 200); never 5xx, never half-stored
	noRecord = "200-none" // 200 and nothing stored (an ignored topic)
)

// TestHostileInput posts hostile requests to an in-process nudge and
// requires a clear 4xx (or a safe 200), never a panic or a 5xx, and
// nothing half-stored: a rejected request leaves the record and raw
// delivery counts unchanged.
func TestHostileInput(t *testing.T) {
	ip := openInproc(t, confOpts{})
	ctx := context.Background()
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	deepObj := []byte(`{"id": 1, "email": "deep@example.com", "line_items": ` + deep + `}`)
	huge := bytes.Repeat([]byte(" "), 2<<20)
	copy(huge, `{"id": 1}`)

	type tc struct {
		name  string
		path  string
		body  func(t *testing.T) ([]byte, http.Header)
		want  string
		check func(t *testing.T, db *storage.DB)
	}
	cases := []tc{
		{name: "huge body, signed", path: "/webhooks/shopify/main", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) { return huge, signedShopify("orders/create", huge) }},
		{name: "huge tracking batch", path: "/v1/batch", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) { return huge, trackingHeader() }},
		{name: "deep JSON, signed", path: "/webhooks/shopify/main", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) { return deepObj, signedShopify("orders/create", deepObj) }},
		{name: "deep JSON tracking", path: "/v1/track", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) {
				return []byte(`{"type":"track","event":"x","anonymousId":"a","properties":` + deep + `}`), trackingHeader()
			}},
		{name: "unsigned order", path: "/webhooks/shopify/main", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) {
				b, h := shopifyDelivery(t, "orders/create", "unsigned@example.com", time.Now())
				h.Del(shopify.HeaderHmac)
				return b, h
			}},
		{name: "signature of another body", path: "/webhooks/shopify/main", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) {
				b, h := shopifyDelivery(t, "orders/create", "swapped@example.com", time.Now())
				return append(b, ' '), h
			}},
		{name: "unknown store", path: "/webhooks/shopify/nope", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) {
				return shopifyDelivery(t, "orders/create", "nostore@example.com", time.Now())
			}},
		{name: "not JSON, signed", path: "/webhooks/shopify/main", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) {
				b := []byte("<xml>order</xml>")
				return b, signedShopify("orders/create", b)
			}},
		{name: "invalid UTF-8 in names and titles", path: "/webhooks/shopify/main", want: either,
			body: func(t *testing.T) ([]byte, http.Header) {
				b, _ := shopifyDelivery(t, "orders/create", "utf8@example.com", time.Now())
				b = bytes.Replace(b, []byte(`"Sam"`), []byte("\"S\xff\xfeam\""), 1)
				b = bytes.Replace(b, []byte(`IPod Nano`), []byte("IPod \xc3\x28Nano"), 1)
				return b, signedShopify("orders/create", b)
			},
			check: func(t *testing.T, db *storage.DB) {
				_ = db.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(r behavior.Record) error {
					b, _ := json.Marshal(r)
					if !utf8.Valid(b) {
						t.Errorf("record %s stored invalid UTF-8", r.ID)
					}
					return nil
				})
			}},
		{name: "wrong content type on a webhook", path: "/webhooks/shopify/main", want: either,
			body: func(t *testing.T) ([]byte, http.Header) {
				b, h := shopifyDelivery(t, "checkouts/create", "ctype@example.com", time.Now())
				h.Set("Content-Type", "text/plain")
				return b, h
			}},
		{name: "form body on the tracking API", path: "/v1/track", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) {
				h := trackingHeader()
				h.Set("Content-Type", "application/x-www-form-urlencoded")
				return []byte("type=track&event=x"), h
			}},
		{name: "tracking with a wrong write key", path: "/v1/track", want: reject,
			body: func(t *testing.T) ([]byte, http.Header) {
				h := trackingHeader()
				h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("guess:")))
				return []byte(`{"type":"track","event":"Product Viewed","anonymousId":"a1"}`), h
			}},
		{name: "header injection through the email", path: "/webhooks/shopify/main", want: either,
			body: func(t *testing.T) ([]byte, http.Header) {
				return mutateShopify(t, "checkouts/create", "inj@example.com", func(m map[string]any) {
					m["email"] = "inj@example.com\r\nBcc: victim@example.com"
					if c, ok := m["customer"].(map[string]any); ok {
						c["email"] = "inj@example.com\r\nBcc: victim@example.com"
					}
				})
			},
			check: func(t *testing.T, db *storage.DB) {
				if p, err := db.ProfileByEmail(context.Background(), "victim@example.com"); err == nil {
					t.Errorf("an injected Bcc address became a profile: %+v", p.Identities)
				}
				_ = db.ScanProfiles(context.Background(), func(p storage.Profile) error {
					if strings.ContainsAny(p.Email, "\r\n") || strings.ContainsAny(p.FirstName+p.LastName, "\r\n") {
						t.Errorf("profile %s stores a CR/LF in an address or name: %q %q %q", p.ID, p.Email, p.FirstName, p.LastName)
					}
					return nil
				})
			}},
		{name: "header injection through the tracking email trait", path: "/v1/identify", want: either,
			body: func(t *testing.T) ([]byte, http.Header) {
				return []byte(`{"type":"identify","anonymousId":"inj-anon","traits":{"email":"inj2@example.com\r\nBcc: victim2@example.com"}}`), trackingHeader()
			},
			check: func(t *testing.T, db *storage.DB) {
				if _, err := db.ProfileByEmail(context.Background(), "victim2@example.com"); err == nil {
					t.Error("an injected Bcc address became a profile")
				}
			}},
		{name: "10k line items", path: "/webhooks/shopify/main", want: either,
			body: func(t *testing.T) ([]byte, http.Header) {
				return mutateShopify(t, "orders/create", "manyitems@example.com", func(m map[string]any) {
					m["line_items"] = lineItems(10_000, "1.00")
				})
			}},
		{name: "negative prices", path: "/webhooks/shopify/main", want: either,
			body: func(t *testing.T) ([]byte, http.Header) {
				return mutateShopify(t, "orders/create", "negative@example.com", func(m map[string]any) {
					m["line_items"] = lineItems(2, "-500.00")
					m["total_price"], m["subtotal_price"], m["current_total_price"] = "-1000.00", "-1000.00", "-1000.00"
				})
			},
			check: func(t *testing.T, db *storage.DB) {
				p, err := db.ProfileByEmail(context.Background(), "negative@example.com")
				if err != nil {
					return // rejected: fine
				}
				if p.TotalSpent < 0 {
					t.Errorf("a negative order total made total_spent negative: %d", p.TotalSpent)
				}
			}},
		{name: "null bytes and control characters", path: "/v1/track", want: either,
			body: func(t *testing.T) ([]byte, http.Header) {
				return []byte(`{"type":"track","event":"Product Viewed\u0000\u001b[31m","anonymousId":"ctl","properties":{"name":"a\u0000b"}}`), trackingHeader()
			}},
		{name: "ignored topic, signed", path: "/webhooks/shopify/main", want: noRecord,
			body: func(t *testing.T) ([]byte, http.Header) {
				b := []byte(`{"id": 1}`)
				return b, signedShopify("shop/update", b)
			}},
	}
	db := ip.app.Store
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, err := db.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			body, h := c.body(t)
			start := time.Now()
			status, answer := post(ctx, &http.Client{Timeout: 30 * time.Second}, ip.srv.URL+c.path, body, h)
			took := time.Since(start)
			after, err := db.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d in %v: %.200s", status, took.Round(time.Millisecond), answer)
			if status == 0 || status >= 500 {
				t.Fatalf("status %d: a hostile input must get a clear 4xx or a safe 200", status)
			}
			if status >= 400 && !json.Valid(answer) {
				t.Errorf("error answer is not JSON: %q", answer)
			}
			switch c.want {
			case reject:
				if status < 400 {
					t.Errorf("status %d, want 4xx", status)
				}
			case noRecord:
				if status != http.StatusOK {
					t.Errorf("status %d, want 200", status)
				}
			}
			if (status >= 400 || c.want == noRecord) && (after.Records != before.Records) {
				t.Errorf("records %d → %d after a rejected request: half-stored", before.Records, after.Records)
			}
			if status >= 400 && after.Deliveries != before.Deliveries {
				t.Errorf("raw deliveries %d → %d after a rejected request", before.Deliveries, after.Deliveries)
			}
			if took > 10*time.Second {
				t.Errorf("took %v", took)
			}
			if c.check != nil {
				c.check(t, db)
			}
		})
	}
}
