package shopify

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/connectortest"
)

const testSecret = "test_secret_key"

func testReceiver() *Receiver {
	return New(Config{StoreID: "main", Secret: testSecret, Currency: "USD", StoreURL: "https://example.com/"})
}

// headers returns the unsigned headers of a delivery of topic, with a
// fixed event id so record ids are stable in goldens.
func headers(topic string) http.Header {
	h := http.Header{}
	h.Set(HeaderTopic, topic)
	h.Set(HeaderShopDomain, "example.myshopify.com")
	h.Set(HeaderAPIVersion, "2024-04")
	h.Set(HeaderWebhookID, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
	h.Set(HeaderEventID, "98880550-7158-44d4-b7cd-2c97c8a091b5:"+topic)
	h.Set(HeaderTriggeredAt, "2024-04-02T14:00:00.123456Z")
	return h
}

func fixtures(t testing.TB) []connectortest.Fixture {
	load := func(name, file, topic string) connectortest.Fixture {
		return connectortest.Load(t, name, "testdata/"+file, headers(topic))
	}
	ignored := func(name, file, topic string) connectortest.Fixture {
		f := load(name, file, topic)
		f.WantErr = connectors.ErrIgnored
		return f
	}
	return []connectortest.Fixture{
		load("checkouts_create", "shopify_checkouts_create.json", "checkouts/create"),
		load("orders_create", "shopify_orders_create.json", "orders/create"),
		load("orders_paid", "shopify_orders_create.json", "orders/paid"),
		load("orders_fulfilled", "shopify_orders_create.json", "orders/fulfilled"),
		load("orders_cancelled", "shopify_orders_create.json", "orders/cancelled"),
		load("refunds_create", "shopify_refunds_create.json", "refunds/create"),
		load("customers_create", "shopify_customers_create.json", "customers/create"),
		load("customers_email_marketing_consent_update", "customers_email_marketing_consent_update.json", "customers_email_marketing_consent/update"),
		load("carts_update", "carts_update.json", "carts/update"),
		load("products_update", "shopify_products_update.json", "products/update"),
		load("inventory_levels_update", "shopify_inventory_levels_update.json", "inventory_levels/update"),
		ignored("checkouts_delete", "shopify_checkouts_create.json", "checkouts/delete"),
		ignored("orders_updated", "shopify_orders_create.json", "orders/updated"),
		ignored("sms_consent", "customers_email_marketing_consent_update.json", "customers/marketing_consent/update"),
		ignored("customers_redact", "shopify_customers_create.json", "customers/redact"),
		ignored("shop_redact", "shopify_customers_create.json", "shop/redact"),
		ignored("customers_data_request", "shopify_customers_create.json", "customers/data_request"),
		ignored("unknown_topic", "shopify_orders_create.json", "app/uninstalled"),
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	connectortest.Run(t, connectortest.Case{
		Receiver: testReceiver(),
		Sign: func(h http.Header, body []byte, _ time.Time) (http.Header, []byte) {
			h.Set(HeaderHmac, Sign(testSecret, body))
			return h, body
		},
		Fixtures:  fixtures(t),
		GoldenDir: "testdata/golden",
	})
}

func FuzzNormalize(f *testing.F) {
	connectortest.Fuzz(f, testReceiver(), fixtures(f))
}

// TestVerifyVectors checks the vectors of fixtures/test_vectors.md §4.
func TestVerifyVectors(t *testing.T) {
	t.Parallel()
	checkout, err := os.ReadFile("testdata/shopify_checkouts_create.json")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"foo": "bar"}`)
	cases := []struct {
		name    string
		cfg     Config
		hdr     string // header name carrying the HMAC; "" = none
		mac     string
		body    []byte
		wantErr error
	}{
		{"vector foo/bar", Config{Secret: testSecret}, HeaderHmac, "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", body, nil},
		{"vector checkout fixture", Config{Secret: testSecret}, HeaderHmac, "2ix9JwmUM00Lcw/gginublU7kKFw3odx6OCCFJZk4jM=", checkout, nil},
		{"events delivery header without X-", Config{Secret: testSecret}, "Shopify-Hmac-Sha256", "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", body, nil},
		{"lower-case header (HTTP/2)", Config{Secret: testSecret}, "x-shopify-hmac-sha256", "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", body, nil},
		{"rotated: previous secret", Config{Secret: "new-secret", PreviousSecret: testSecret}, HeaderHmac, "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", body, nil},
		{"rotated: current secret", Config{Secret: testSecret, PreviousSecret: "old-secret"}, HeaderHmac, "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", body, nil},
		{"wrong secret", Config{Secret: "other", PreviousSecret: "older"}, HeaderHmac, "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", body, connectors.ErrSignature},
		{"body with trailing newline", Config{Secret: testSecret}, HeaderHmac, "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=", []byte("{\"foo\": \"bar\"}\n"), connectors.ErrSignature},
		{"hex instead of base64", Config{Secret: testSecret}, HeaderHmac, "076ded5cdebcd60674a8858d46b82dcc113d5d20e8e72694bbac1f9a1bb76bb8", body, connectors.ErrSignature},
		{"missing header", Config{Secret: testSecret}, "", "", body, connectors.ErrSignature},
		{"no secret configured", Config{}, HeaderHmac, Sign("", body), body, connectors.ErrSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.hdr != "" {
				h[tc.hdr] = []string{tc.mac} // set raw to keep the exact spelling
				h.Set(tc.hdr, tc.mac)
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
	if got := Sign(testSecret, body); got != "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=" {
		t.Errorf("Sign = %s", got)
	}
}

func normalizeFixture(t *testing.T, file, topic string) []behavior.Record {
	t.Helper()
	body, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := testReceiver().Normalize(headers(topic), body)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	return recs
}

// TestNormalizeFields pins the facts that matter downstream, so a golden
// rewritten with -update cannot silently lose them.
func TestNormalizeFields(t *testing.T) {
	t.Parallel()
	t.Run("checkout", func(t *testing.T) {
		r := normalizeFixture(t, "shopify_checkouts_create.json", "checkouts/create")[0]
		want := map[string]string{
			"kind": string(behavior.CheckoutStarted), "email": "bob.norman@mail.example.com",
			"customer": "207119551", "anon": "shopify-cart:68778783ad298f1c80c3bafcddeea02f",
			"checkout_token": "2a1ace52255252df566af0faaedfbfa7",
			"recovery":       "https://checkout.local/548380009/checkouts/2a1ace52255252df566af0faaedfbfa7/recover",
			"consent":        behavior.ConsentDenied, "country": "US", "at": "2012-10-12T11:05:27Z",
		}
		got := map[string]string{
			"kind": string(r.Kind), "email": r.Email, "customer": r.CustomerID, "anon": r.AnonymousID,
			"checkout_token": r.Ref(behavior.RefCheckoutToken), "recovery": r.Ref(behavior.RefRecoveryURL),
			"consent": r.Consent.State, "country": r.Person.Country, "at": r.At.Format(time.RFC3339),
		}
		diffMaps(t, got, want)
		if r.Value != 37969 || r.Currency != "USD" || len(r.Items) != 2 || r.Items[0].Price != 19900 || r.Items[0].VariantID != "49148385" {
			t.Errorf("value/items = %d %s %+v", r.Value, r.Currency, r.Items)
		}
	})
	t.Run("order", func(t *testing.T) {
		r := normalizeFixture(t, "shopify_orders_create.json", "orders/create")[0]
		if r.Kind != behavior.OrderPlaced || r.Value != 59894 || r.Ref(behavior.RefOrderID) != "450789469" ||
			r.Ref(behavior.RefCartToken) != "68778783ad298f1c80c3bafcddeea02f" || r.Attrs[AttrOrderName] != "#1001" ||
			r.ID != OrderRecordID("main", behavior.OrderPlaced, "450789469") || len(r.Items) != 3 {
			t.Errorf("order record = %+v", r)
		}
	})
	t.Run("refund", func(t *testing.T) {
		r := normalizeFixture(t, "shopify_refunds_create.json", "refunds/create")[0]
		if r.Kind != behavior.OrderRefunded || r.Value != 20900 || r.Ref(behavior.RefOrderID) != "450789469" ||
			r.AnonymousID != OrderAnonymousID("450789469") || len(r.Items) != 2 {
			t.Errorf("refund record = %+v", r)
		}
	})
	t.Run("consent update keeps ids above 2^53 exact", func(t *testing.T) {
		r := normalizeFixture(t, "customers_email_marketing_consent_update.json", "customers_email_marketing_consent/update")[0]
		if r.CustomerID != "9007199254740993" || r.Email != "bob.norman@mail.example.com" ||
			r.Consent == nil || r.Consent.State != behavior.ConsentGranted || r.Consent.Level != "confirmed_opt_in" {
			t.Errorf("consent record = %+v consent %+v", r, r.Consent)
		}
	})
	t.Run("products", func(t *testing.T) {
		r := normalizeFixture(t, "shopify_products_update.json", "products/update")[0]
		if len(r.Items) != 4 {
			t.Fatalf("items = %d, want one per variant", len(r.Items))
		}
		it := r.Items[0]
		if it.ProductID != "632910392" || it.VariantID != "808950810" || it.Price != 19900 || it.Available == nil || *it.Available != 10 ||
			it.URL != "https://example.com/products/ipod-nano" || !strings.Contains(it.ImageURL, "ipod-nano-2.png") {
			t.Errorf("first item = %+v", it)
		}
		if inv, _ := r.Attrs[AttrInventoryItems].(map[string]any); inv["808950810"] != "808950810" {
			t.Errorf("inventory map = %v", r.Attrs[AttrInventoryItems])
		}
	})
	t.Run("inventory", func(t *testing.T) {
		r := normalizeFixture(t, "shopify_inventory_levels_update.json", "inventory_levels/update")[0]
		if len(r.Items) != 1 || r.Items[0].Available == nil || *r.Items[0].Available != 42 || r.Attrs[AttrInventoryItemID] != "808950810" {
			t.Errorf("inventory record = %+v", r)
		}
	})
	t.Run("cart", func(t *testing.T) {
		r := normalizeFixture(t, "carts_update.json", "carts/update")[0]
		if r.AnonymousID != "shopify-cart:eeafa272cebfd4b22385bc4b645e762c" || r.Email != "" || r.Value != 5997 ||
			r.Items[0].ProductID != "788032119674292922" {
			t.Errorf("cart record = %+v", r)
		}
	})
}

func diffMaps(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	t.Parallel()
	completed := strings.Replace(readFile(t, "shopify_checkouts_create.json"), `"completed_at": null`, `"completed_at": "2012-10-12T07:15:00-04:00"`, 1)
	cases := []struct {
		name, topic, body string
		want              error
	}{
		{"not JSON", "orders/create", "webhook_id=1", connectors.ErrMalformed},
		{"JSON array", "orders/create", `[{"id":1}]`, connectors.ErrMalformed},
		{"empty body", "checkouts/create", "", connectors.ErrMalformed},
		{"price not money", "orders/create", `{"id":1,"email":"a@b.c","created_at":"2024-01-01T00:00:00Z","total_price":"12,50"}`, connectors.ErrMalformed},
		{"float id is not an id", "orders/create", `{"id":true}`, connectors.ErrMalformed},
		{"order without id", "orders/paid", `{"email":"a@b.c"}`, connectors.ErrMalformed},
		{"unknown consent state", "customers_email_marketing_consent/update", `{"customer_id":1,"email_marketing_consent":{"state":"maybe"}}`, connectors.ErrMalformed},
		{"completed checkout", "checkouts/update", completed, connectors.ErrIgnored},
		{"checkout naming nobody", "checkouts/create", `{"id":1,"updated_at":"2024-01-01T00:00:00Z"}`, connectors.ErrIgnored},
		{"no topic", "", `{}`, connectors.ErrIgnored},
		{"unknown topic", "themes/publish", `not even json`, connectors.ErrIgnored},
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

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRecordIDs checks the dedupe keys: the event id decides, then the
// webhook id, then the resource id and updated_at; order lifecycle
// records depend on the order alone.
func TestRecordIDs(t *testing.T) {
	t.Parallel()
	body := []byte(readFile(t, "shopify_checkouts_create.json"))
	id := func(mut func(h http.Header)) string {
		h := headers("checkouts/update")
		mut(h)
		recs, err := testReceiver().Normalize(h, body)
		if err != nil {
			t.Fatal(err)
		}
		return recs[0].ID
	}
	base := id(func(http.Header) {})
	if got := id(func(h http.Header) { h.Set(HeaderWebhookID, "another-delivery") }); got != base {
		t.Error("redelivery of one event (same event id, new webhook id) changed the record id")
	}
	if got := id(func(h http.Header) { h.Set(HeaderEventID, "another-event") }); got == base {
		t.Error("a different event kept the record id")
	}
	noEvent := id(func(h http.Header) { h.Del(HeaderEventID) })
	if noEvent == base || noEvent != id(func(h http.Header) { h.Del(HeaderEventID) }) {
		t.Error("webhook-id fallback is not distinct and stable")
	}
	if got := id(func(h http.Header) {
		h.Del(HeaderEventID)
		h.Set("Shopify-Webhook-Id", h.Get(HeaderWebhookID))
		h.Del(HeaderWebhookID)
	}); got != noEvent {
		t.Error("un-prefixed Shopify-Webhook-Id not used like X-Shopify-Webhook-Id")
	}
	noIDs := id(func(h http.Header) { h.Del(HeaderEventID); h.Del(HeaderWebhookID) })
	if noIDs == noEvent || noIDs != id(func(h http.Header) { h.Del(HeaderEventID); h.Del(HeaderWebhookID) }) {
		t.Error("resource fallback is not distinct and stable")
	}

	order := []byte(readFile(t, "shopify_orders_create.json"))
	a, err := testReceiver().Normalize(headers("orders/create"), order)
	if err != nil {
		t.Fatal(err)
	}
	h := headers("orders/create")
	h.Set(HeaderEventID, "a-second-subscription")
	b, err := testReceiver().Normalize(h, order)
	if err != nil {
		t.Fatal(err)
	}
	if a[0].ID != b[0].ID {
		t.Error("two deliveries of one order gave two order_placed ids")
	}
}

// TestSampleRoundTrip checks every sample topic through Sign, Verify and
// Normalize, and that two samples are distinct events.
func TestSampleRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r := testReceiver()
	for _, topic := range SampleTopics() {
		t.Run(strings.ReplaceAll(topic, "/", "_"), func(t *testing.T) {
			body, h, err := Sample(topic, "Ann@Example.com", now)
			if err != nil {
				t.Fatal(err)
			}
			if h.Get(HeaderHmac) != "" {
				t.Fatal("Sample must not sign")
			}
			if r.Topic(h) != topic || h.Get(HeaderEventID) == "" || h.Get(HeaderWebhookID) == "" || h.Get(HeaderTriggeredAt) == "" {
				t.Fatalf("headers = %v", h)
			}
			if err := r.Verify(h, body, now); !errors.Is(err, connectors.ErrSignature) {
				t.Fatalf("unsigned sample verified: %v", err)
			}
			h.Set(HeaderHmac, Sign(testSecret, body))
			if err := r.Verify(h, body, now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			recs, err := r.Normalize(h, body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			connectortest.CheckRecords(t, Name, nil, recs)
			rec := recs[0]
			switch {
			case strings.HasPrefix(topic, "checkouts/"), strings.HasPrefix(topic, "orders/"),
				strings.HasPrefix(topic, "customers"):
				if rec.Email != "ann@example.com" {
					t.Errorf("email = %q", rec.Email)
				}
				if rec.Consent == nil || rec.Consent.State != behavior.ConsentGranted {
					t.Errorf("consent = %+v, want granted", rec.Consent)
				}
				if !rec.At.Equal(now) && !rec.At.Equal(now.Add(-10*time.Minute)) {
					t.Errorf("At = %v, want about %v", rec.At, now)
				}
			}
			body2, h2, err := Sample(topic, "ann@example.com", now)
			if err != nil {
				t.Fatal(err)
			}
			recs2, err := r.Normalize(h2, body2)
			if err != nil {
				t.Fatal(err)
			}
			if recs2[0].ID == rec.ID {
				t.Error("two samples share a record id; repeated triggers would dedupe")
			}
			if rec.CustomerID != "" && recs2[0].CustomerID != rec.CustomerID {
				t.Errorf("customer id differs for one email: %s vs %s", rec.CustomerID, recs2[0].CustomerID)
			}
		})
	}
	if _, _, err := Sample("no/such", "", now); err == nil {
		t.Error("unknown sample topic gave no error")
	}
}
