package woocommerce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/connectortest"
)

const testSecret = "woo-test-secret"

func testReceiver() *Receiver {
	return New(Config{StoreID: "main", Secret: testSecret, Currency: "USD", StoreURL: "https://shop.example/"})
}

func headers(topic string) http.Header {
	h := http.Header{}
	resource, event, _ := strings.Cut(topic, ".")
	h.Set(HeaderSource, "https://shop.example/")
	h.Set(HeaderTopic, topic)
	h.Set(HeaderResource, resource)
	h.Set(HeaderEvent, event)
	h.Set(HeaderWebhookID, "3")
	h.Set(HeaderDeliveryID, "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5")
	return h
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// orderWith returns the order fixture with its status and payment date
// replaced.
func orderWith(t testing.TB, status string, paid bool) []byte {
	s := strings.Replace(readFile(t, "woocommerce_order_created.json"), `"status": "processing"`, `"status": "`+status+`"`, 1)
	if !paid {
		s = strings.Replace(s, `"date_paid_gmt": "2017-03-22T19:28:08"`, `"date_paid_gmt": null`, 1)
	}
	return []byte(s)
}

func fixtures(t testing.TB) []connectortest.Fixture {
	load := func(name, file, topic string) connectortest.Fixture {
		return connectortest.Load(t, name, "testdata/"+file, headers(topic))
	}
	ignored := func(name, topic, body string) connectortest.Fixture {
		return connectortest.Fixture{Name: name, Header: headers(topic), Body: []byte(body), WantErr: connectors.ErrIgnored}
	}
	status := func(s string, paid bool) connectortest.Fixture {
		return connectortest.Fixture{Name: "order_" + strings.ReplaceAll(s, "-", "_"), Header: headers("order.updated"), Body: orderWith(t, s, paid)}
	}
	return []connectortest.Fixture{
		load("order_created", "woocommerce_order_created.json", "order.created"),
		load("customer_created", "customer_created.json", "customer.created"),
		load("product_updated", "product_updated.json", "product.updated"),
		status("pending", false),
		status("checkout-draft", false),
		status("on-hold", false),
		status("completed", true),
		status("cancelled", false),
		status("refunded", true),
		status("failed", false),
		ignored("order_trash", "order.updated", string(orderWith(t, "trash", false))),
		ignored("order_deleted", "order.deleted", `{"id":727}`),
		ignored("product_deleted", "product.deleted", `{"id":794}`),
		ignored("action", "action.woocommerce_add_to_cart", `{"action":"woocommerce_add_to_cart","arg":"0d8c8b4e5e1a2b3c"}`),
		ignored("coupon", "coupon.created", `{"id":719,"code":"10off"}`),
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	connectortest.Run(t, connectortest.Case{
		Receiver: testReceiver(),
		Sign: func(h http.Header, body []byte, _ time.Time) (http.Header, []byte) {
			h.Set(HeaderSignature, Sign(testSecret, body))
			return h, body
		},
		Fixtures:  fixtures(t),
		GoldenDir: "testdata/golden",
	})
}

func FuzzNormalize(f *testing.F) {
	connectortest.Fuzz(f, testReceiver(), fixtures(f))
}

func rawSign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestVerifyVectors checks fixtures/test_vectors.md §5, secret rotation
// and the entity-decoded secret.
func TestVerifyVectors(t *testing.T) {
	t.Parallel()
	order := []byte(readFile(t, "woocommerce_order_created.json"))
	small := []byte(`{"id":1}`)
	cases := []struct {
		name    string
		cfg     Config
		sig     string
		body    []byte
		wantErr error
	}{
		{"vector id:1", Config{Secret: testSecret}, "bjhQguKGijA1tK6bsxEc25nmen5GyQ4VtsZk8MDE+Fw=", small, nil},
		{"vector order fixture", Config{Secret: testSecret}, "CcDfh0ZCQ686CAlnPiLpNurcP3sDQXu40uXFXwO6pcY=", order, nil},
		{"rotated: previous secret", Config{Secret: "new", PreviousSecret: testSecret}, "bjhQguKGijA1tK6bsxEc25nmen5GyQ4VtsZk8MDE+Fw=", small, nil},
		{"entity-encoded stored secret", Config{Secret: "a&amp;b"}, rawSign("a&b", small), small, nil},
		{"entity-encoded quotes and brackets", Config{Secret: "&lt;s&#039;e&quot;c&gt;"}, rawSign(`<s'e"c>`, small), small, nil},
		{"signed with the encoded form is wrong", Config{Secret: "a&amp;b"}, rawSign("a&amp;b", small), small, connectors.ErrSignature},
		{"wrong secret", Config{Secret: "other"}, "bjhQguKGijA1tK6bsxEc25nmen5GyQ4VtsZk8MDE+Fw=", small, connectors.ErrSignature},
		{"re-serialized body", Config{Secret: testSecret}, "bjhQguKGijA1tK6bsxEc25nmen5GyQ4VtsZk8MDE+Fw=", []byte(`{"id": 1}`), connectors.ErrSignature},
		{"missing signature", Config{Secret: testSecret}, "", small, connectors.ErrSignature},
		{"no secret configured", Config{}, rawSign("", small), small, connectors.ErrSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := headers("order.created")
			if tc.sig != "" {
				h.Set(HeaderSignature, tc.sig)
			}
			err := New(tc.cfg).Verify(h, tc.body, time.Now())
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if got := Sign(testSecret, small); got != "bjhQguKGijA1tK6bsxEc25nmen5GyQ4VtsZk8MDE+Fw=" {
		t.Errorf("Sign = %s", got)
	}
}

func TestDecodeSecret(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":                "plain",
		"a&amp;b":              "a&b",
		"&lt;&gt;&quot;":       `<>"`,
		"&#039;&#39;&#x27;":    "'''",
		"&amp;lt;":             "&lt;", // one pass, like PHP
		"&#038;&#38;":          "&&",
		"a & b":                "a & b",
		"&unknown; &nbsp;":     "&unknown; &nbsp;",
		"trailing &amp":        "trailing &amp",
		"&quot;quoted&quot; x": `"quoted" x`,
	} {
		if got := DecodeSecret(in); got != want {
			t.Errorf("DecodeSecret(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsPing(t *testing.T) {
	t.Parallel()
	ping := []byte(readFile(t, "woocommerce_ping_body.txt"))
	signed := http.Header{}
	signed.Set(HeaderSignature, Sign(testSecret, ping))
	cases := []struct {
		name string
		h    http.Header
		body []byte
		want bool
	}{
		{"fixture", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, ping, true},
		{"trailing newline", http.Header{}, []byte("webhook_id=42\n"), true},
		{"signed", signed, ping, false},
		{"has topic", headers("order.created"), ping, false},
		{"not digits", http.Header{}, []byte("webhook_id=abc"), false},
		{"extra fields", http.Header{}, []byte("webhook_id=1&x=2"), false},
		{"json", http.Header{}, []byte(`{"webhook_id":1}`), false},
		{"empty", http.Header{}, nil, false},
	}
	r := testReceiver()
	for _, tc := range cases {
		if got := r.IsPing(tc.h, tc.body); got != tc.want {
			t.Errorf("%s: IsPing = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func kinds(recs []behavior.Record) []behavior.Kind {
	var out []behavior.Kind
	for _, r := range recs {
		out = append(out, r.Kind)
	}
	return out
}

// TestStatusMapping is the order status table of Normalize's doc comment.
func TestStatusMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status string
		paid   bool
		want   []behavior.Kind
	}{
		{"checkout-draft", false, []behavior.Kind{behavior.CheckoutStarted}},
		{"pending", false, []behavior.Kind{behavior.CheckoutStarted}},
		{"failed", false, []behavior.Kind{behavior.PaymentFailed}},
		{"on-hold", false, []behavior.Kind{behavior.OrderPlaced}},
		{"processing", false, []behavior.Kind{behavior.OrderPlaced}},
		{"processing", true, []behavior.Kind{behavior.OrderPlaced, behavior.OrderPaid}},
		{"completed", false, []behavior.Kind{behavior.OrderPlaced, behavior.OrderFulfilled}},
		{"completed", true, []behavior.Kind{behavior.OrderPlaced, behavior.OrderPaid, behavior.OrderFulfilled}},
		{"cancelled", false, []behavior.Kind{behavior.OrderCancelled}},
		{"refunded", true, []behavior.Kind{behavior.OrderRefunded}},
		{"Processing", true, []behavior.Kind{behavior.OrderPlaced, behavior.OrderPaid}},
		{"trash", false, nil},
		{"draft", false, nil},
		{"wc-custom-status", false, nil},
	}
	r := testReceiver()
	for _, tc := range cases {
		recs, err := r.Normalize(headers("order.updated"), orderWith(t, tc.status, tc.paid))
		if tc.want == nil {
			if !errors.Is(err, connectors.ErrIgnored) {
				t.Errorf("%s: err = %v, want ErrIgnored", tc.status, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s paid=%v: %v", tc.status, tc.paid, err)
			continue
		}
		if got := kinds(recs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s paid=%v: kinds = %v, want %v", tc.status, tc.paid, got, tc.want)
		}
		connectortest.CheckRecords(t, Name, nil, recs)
	}
}

// TestOrderDedupe: order.created and a later order.updated of one
// processing order yield one order_placed id; a pending order's changes
// are distinct checkout_started records, and a redelivery is not.
func TestOrderDedupe(t *testing.T) {
	t.Parallel()
	r := testReceiver()
	created, err := r.Normalize(headers("order.created"), orderWith(t, "processing", true))
	if err != nil {
		t.Fatal(err)
	}
	later := strings.Replace(string(orderWith(t, "processing", true)), `"date_modified_gmt": "2017-03-22T19:28:08"`, `"date_modified_gmt": "2017-03-23T08:00:00"`, 1)
	updated, err := r.Normalize(headers("order.updated"), []byte(later))
	if err != nil {
		t.Fatal(err)
	}
	if created[0].Kind != behavior.OrderPlaced || updated[0].Kind != behavior.OrderPlaced || created[0].ID != updated[0].ID {
		t.Fatalf("order_placed ids differ across created/updated: %s vs %s", created[0].ID, updated[0].ID)
	}
	if created[0].ID != OrderRecordID("main", behavior.OrderPlaced, "727") || created[1].ID != updated[1].ID {
		t.Error("lifecycle ids do not follow OrderRecordID")
	}

	pending := orderWith(t, "pending", false)
	a, _ := r.Normalize(headers("order.created"), pending)
	h := headers("order.created")
	h.Set(HeaderDeliveryID, "another-delivery-id")
	b, _ := r.Normalize(h, pending)
	changed := strings.Replace(string(pending), `"date_modified_gmt": "2017-03-22T19:28:08"`, `"date_modified_gmt": "2017-03-22T20:00:00"`, 1)
	c, _ := r.Normalize(headers("order.updated"), []byte(changed))
	if len(a) != 1 || len(b) != 1 || len(c) != 1 {
		t.Fatalf("pending records: %d %d %d", len(a), len(b), len(c))
	}
	if a[0].ID != b[0].ID {
		t.Error("redelivery of one pending state changed the id")
	}
	if a[0].ID == c[0].ID {
		t.Error("a modified pending order kept the checkout_started id")
	}
}

func TestNormalizeFields(t *testing.T) {
	t.Parallel()
	r := testReceiver()
	t.Run("processing order", func(t *testing.T) {
		recs, err := r.Normalize(headers("order.created"), []byte(readFile(t, "woocommerce_order_created.json")))
		if err != nil {
			t.Fatal(err)
		}
		p := recs[0]
		if p.Email != "john.doe@example.com" || p.CustomerID != "" || p.Value != 2935 || p.Currency != "USD" ||
			p.Ref(behavior.RefOrderID) != "727" || p.At.Format(time.RFC3339) != "2017-03-22T19:28:02Z" {
			t.Errorf("order_placed = %+v", p)
		}
		if len(p.Items) != 2 || p.Items[0].Price != 300 || p.Items[0].Quantity != 2 || p.Items[1].Price != 1200 ||
			p.Items[1].VariantID != "23" || p.Items[0].VariantID != "" || p.Items[1].Title != "Ship Your Idea – Color: Black, Size: M Test" {
			t.Errorf("items = %+v", p.Items)
		}
		if recs[1].Kind != behavior.OrderPaid || recs[1].At.Format(time.RFC3339) != "2017-03-22T19:28:08Z" {
			t.Errorf("order_paid = %+v", recs[1])
		}
	})
	t.Run("pending order recovery URL", func(t *testing.T) {
		recs, err := r.Normalize(headers("order.created"), orderWith(t, "pending", false))
		if err != nil {
			t.Fatal(err)
		}
		want := "https://shop.example/checkout/order-pay/727/?pay_for_order=true&key=wc_order_58d2d042d1d"
		if got := recs[0].Ref(behavior.RefRecoveryURL); got != want {
			t.Errorf("recovery_url = %q, want %q", got, want)
		}
		noURL, _ := New(Config{StoreID: "main", Secret: testSecret}).Normalize(headers("order.created"), orderWith(t, "pending", false))
		if noURL[0].Ref(behavior.RefRecoveryURL) != "" {
			t.Error("recovery URL without a StoreURL")
		}
	})
	t.Run("price derived from total when not a plain number", func(t *testing.T) {
		body := strings.Replace(readFile(t, "woocommerce_order_created.json"), `"price": 3`, `"price": 3.0e0`, 1)
		recs, err := r.Normalize(headers("order.created"), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Items[0].Price != 300 {
			t.Errorf("price = %d, want 600/2", recs[0].Items[0].Price)
		}
	})
	t.Run("customer with consent meta", func(t *testing.T) {
		recs, err := r.Normalize(headers("customer.created"), []byte(readFile(t, "customer_created.json")))
		if err != nil {
			t.Fatal(err)
		}
		c := recs[0]
		if c.CustomerID != "25" || c.Email != "john.doe@example.com" || c.Consent == nil || c.Consent.State != behavior.ConsentGranted ||
			c.Person == nil || c.Person.FirstName != "John" || c.Person.Country != "US" {
			t.Errorf("customer = %+v consent %+v", c, c.Consent)
		}
	})
	t.Run("consent values", func(t *testing.T) {
		for v, want := range map[string]bool{`"1"`: true, `1`: true, `true`: true, `"yes"`: true, `"0"`: false, `false`: false, `""`: false, `{}`: false, `null`: false} {
			body := `{"id":1,"email":"a@b.c","date_modified_gmt":"2020-01-01T00:00:00","meta_data":[{"key":"_newsletter_optin","value":` + v + `}]}`
			recs, err := r.Normalize(headers("customer.updated"), []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if got := recs[0].Consent != nil; got != want {
				t.Errorf("meta value %s: consent = %v, want %v", v, got, want)
			}
		}
	})
	t.Run("product stock", func(t *testing.T) {
		recs, err := r.Normalize(headers("product.updated"), []byte(readFile(t, "product_updated.json")))
		if err != nil {
			t.Fatal(err)
		}
		it := recs[0].Items[0]
		if it.ProductID != "794" || it.Price != 2199 || it.Available == nil || *it.Available != 7 || it.Category != "Clothing" ||
			it.URL != "https://example.com/product/premium-quality-19/" || !strings.HasSuffix(it.ImageURL, "T_2_front-4.jpg") {
			t.Errorf("item = %+v", it)
		}
		out := `{"id":9,"parent_id":8,"name":"Tee &amp; Co","price":"5","stock_quantity":null,"stock_status":"outofstock","date_modified_gmt":"2020-01-01T00:00:00"}`
		recs, err = r.Normalize(headers("product.updated"), []byte(out))
		if err != nil {
			t.Fatal(err)
		}
		it = recs[0].Items[0]
		if it.ProductID != "8" || it.VariantID != "9" || it.Available == nil || *it.Available != 0 || it.Title != "Tee & Co" {
			t.Errorf("out-of-stock variation = %+v", it)
		}
	})
}

func TestNormalizeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, topic, body string
		want              error
	}{
		{"ping body under a topic", "order.created", "webhook_id=1", connectors.ErrMalformed},
		{"array", "order.updated", `[1]`, connectors.ErrMalformed},
		{"order without id", "order.updated", `{"status":"processing"}`, connectors.ErrMalformed},
		{"bad total", "order.updated", `{"id":1,"status":"processing","total":"1,5","billing":{"email":"a@b.c"},"date_created_gmt":"2020-01-01T00:00:00"}`, connectors.ErrMalformed},
		{"no dates", "order.updated", `{"id":1,"status":"processing","total":"1.50","billing":{"email":"a@b.c"}}`, connectors.ErrMalformed},
		{"guest draft without email", "order.updated", `{"id":1,"status":"checkout-draft","customer_id":0,"date_modified_gmt":"2020-01-01T00:00:00"}`, connectors.ErrIgnored},
		{"no topic", "", `{}`, connectors.ErrIgnored},
		{"unknown resource", "subscription.created", `{}`, connectors.ErrIgnored},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := headers(tc.topic)
			if tc.topic == "" {
				h.Del(HeaderTopic)
			}
			_, err := testReceiver().Normalize(h, []byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Normalize = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSampleRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r := testReceiver()
	want := map[string][]behavior.Kind{
		"order.created":    {behavior.CheckoutStarted},
		"order.updated":    {behavior.OrderPlaced, behavior.OrderPaid},
		"customer.created": {behavior.CustomerUpdated},
		"customer.updated": {behavior.CustomerUpdated},
		"product.updated":  {behavior.ProductUpdated},
	}
	for _, topic := range SampleTopics() {
		t.Run(topic, func(t *testing.T) {
			body, h, err := Sample(topic, "Ann@Example.com", now)
			if err != nil {
				t.Fatal(err)
			}
			if h.Get(HeaderSignature) != "" || r.Topic(h) != topic || h.Get(HeaderDeliveryID) == "" || h.Get(HeaderSource) == "" {
				t.Fatalf("headers = %v", h)
			}
			if r.IsPing(h, body) {
				t.Fatal("sample looks like a ping")
			}
			h.Set(HeaderSignature, Sign(testSecret, body))
			if err := r.Verify(h, body, now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			recs, err := r.Normalize(h, body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			connectortest.CheckRecords(t, Name, nil, recs)
			if got := kinds(recs); !reflect.DeepEqual(got, want[topic]) {
				t.Errorf("kinds = %v, want %v", got, want[topic])
			}
			if recs[0].Kind != behavior.ProductUpdated {
				if recs[0].Email != "ann@example.com" || recs[0].Consent == nil || recs[0].Consent.State != behavior.ConsentGranted {
					t.Errorf("record = %+v", recs[0])
				}
			}
			if topic == "order.created" && !strings.Contains(recs[0].Ref(behavior.RefRecoveryURL), "/checkout/order-pay/") {
				t.Errorf("pending sample has no recovery URL: %v", recs[0].Refs)
			}
			body2, h2, err := Sample(topic, "ann@example.com", now.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			recs2, err := r.Normalize(h2, body2)
			if err != nil {
				t.Fatal(err)
			}
			if recs2[0].ID == recs[0].ID {
				t.Error("two samples share a record id; repeated triggers would dedupe")
			}
		})
	}
	if _, _, err := Sample("order.exploded", "", now); err == nil {
		t.Error("unknown sample topic gave no error")
	}
}

// Every refund the order lists is one order_refunded record, whatever the
// status, so a partial refund of a processing order counts (the audit's
// order 3001 refunded 40.00 while processing stored nothing), and a
// redelivery or a second refund changes only what is new.
func TestRefundsListed(t *testing.T) {
	t.Parallel()
	r := testReceiver()
	withRefunds := func(status, refunds string) []byte {
		return []byte(strings.Replace(string(orderWith(t, status, true)), `"refunds": []`, `"refunds": [`+refunds+`]`, 1))
	}
	refundsOf := func(recs []behavior.Record) map[string]int64 {
		out := map[string]int64{}
		for _, rec := range recs {
			if rec.Kind == behavior.OrderRefunded {
				out[rec.Ref(RefRefundID)+"|"+rec.ID] = rec.Value
			}
		}
		return out
	}
	one, err := r.Normalize(headers("order.updated"), withRefunds("processing", `{"id": 9, "total": "-40.00"}`))
	if err != nil {
		t.Fatal(err)
	}
	got := refundsOf(one)
	if len(got) != 1 || kinds(one)[0] != behavior.OrderPlaced {
		t.Fatalf("processing with a refund: %v %v", kinds(one), got)
	}
	for _, v := range got {
		if v != 4000 {
			t.Errorf("refund value %d, want 4000", v)
		}
	}
	two, err := r.Normalize(headers("order.updated"), withRefunds("refunded", `{"id": 9, "total": "-40.00"}, {"id": 12, "total": "-10.00"}`))
	if err != nil {
		t.Fatal(err)
	}
	got2 := refundsOf(two)
	if len(got2) != 2 || len(two) != 2 {
		t.Fatalf("refunded with two refunds: %v", got2)
	}
	for k, v := range got {
		if got2[k] != v {
			t.Errorf("the first refund's record changed between deliveries: %v vs %v", got, got2)
		}
	}
	// Refunded with no list: the whole order, once.
	whole, err := r.Normalize(headers("order.updated"), orderWith(t, "refunded", true))
	if err != nil || len(whole) != 1 || whole[0].ID != OrderRecordID("main", behavior.OrderRefunded, "727") {
		t.Fatalf("refunded without refunds: %+v %v", whole, err)
	}
	connectortest.CheckRecords(t, Name, nil, one)
	connectortest.CheckRecords(t, Name, nil, two)
}
