package stripe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/connectortest"
)

const testSecret = "whsec_test_secret" // stripe-go's webhook/client_test.go secret (test_vectors.md §3)

// vectorA is the stripe-go v76 test payload of test_vectors.md §3 (a),
// byte for byte.
const vectorA = "{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\",\n  \"api_version\": \"2023-10-16\"\n}"

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wrap builds the event envelope Stripe would deliver around one of the
// unmodified stripe/openapi fixture objects.
func wrap(t testing.TB, typ, objectFile string) []byte {
	t.Helper()
	obj := readFile(t, "testdata/"+objectFile)
	id := "evt_fixture_" + strings.NewReplacer(".", "_").Replace(typ)
	return fmt.Appendf(nil, `{
  "id": %q,
  "object": "event",
  "api_version": "2023-10-16",
  "created": 1700000000,
  "data": {
    "object": %s
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": %q
}`, id, bytes.TrimSpace(obj), typ)
}

func fixtures(t testing.TB) []connectortest.Fixture {
	t.Helper()
	fx := []connectortest.Fixture{
		connectortest.Load(t, "webhook_checkout_session_expired", "testdata/webhook_checkout_session_expired.json", http.Header{}),
		connectortest.Load(t, "webhook_checkout_session_completed", "testdata/webhook_checkout_session_completed.json", http.Header{}),
	}
	for _, w := range []struct {
		typ, file string
		wantErr   error
	}{
		{"checkout.session.async_payment_succeeded", "object_checkout_session.json", nil},
		// The fixture payment intent and charge name no customer and no
		// email, so they cannot belong to anyone.
		{"payment_intent.succeeded", "object_payment_intent.json", connectors.ErrIgnored},
		{"charge.refunded", "object_charge.json", connectors.ErrIgnored},
		{"invoice.paid", "object_invoice.json", nil},
		{"invoice.payment_failed", "object_invoice.json", nil},
		{"customer.subscription.created", "object_subscription.json", nil},
		{"customer.subscription.deleted", "object_subscription.json", nil},
		{"customer.subscription.updated", "object_subscription.json", connectors.ErrIgnored},
		{"customer.created", "object_customer.json", nil},
		{"customer.updated", "object_customer.json", nil},
		{"plan.created", "object_event.json", connectors.ErrIgnored},
	} {
		fx = append(fx, connectortest.Fixture{
			Name:    "webhook_fixture_" + strings.ReplaceAll(w.typ, ".", "_"),
			Header:  http.Header{},
			Body:    wrap(t, w.typ, w.file),
			WantErr: w.wantErr,
		})
	}
	return fx
}

func signHeader(h http.Header, body []byte, at time.Time) (http.Header, []byte) {
	h.Set(SignatureHeader, Sign(testSecret, body, at))
	return h, body
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, connectortest.Case{
		Receiver:  New(Config{Secret: testSecret}),
		Sign:      signHeader,
		Tolerance: DefaultTolerance,
		Fixtures:  fixtures(t),
	})
}

func FuzzNormalize(f *testing.F) {
	connectortest.Fuzz(f, New(Config{Secret: testSecret}), fixtures(f))
}

func TestVerifyVectors(t *testing.T) {
	t.Parallel()
	vecB := readFile(t, "testdata/webhook_checkout_session_expired.json")
	const (
		sigA = "t=1700000000,v1=3f71e604513befa4dd33f523aef9737aaaa4bcbe63654592c051d12de41125f3"
		sigB = "t=1700000000,v1=beebbf8006d94c508d71707d84ef98d17e108a2e9e806986559cd355571f10f2"
		bad  = "t=1700000000,v1=0000000000000000000000000000000000000000000000000000000000000000"
	)
	at := time.Unix(1700000000, 0)
	r := New(Config{Secret: testSecret})
	rolled := New(Config{Secret: "whsec_new", PreviousSecret: testSecret})
	tests := []struct {
		name   string
		r      *Receiver
		body   []byte
		header string
		now    time.Time
		want   error
	}{
		{"a verifies", r, []byte(vectorA), sigA, at, nil},
		{"b verifies", r, vecB, sigB, at, nil},
		{"b verifies 300s later", r, vecB, sigB, at.Add(300 * time.Second), nil},
		{"a stale at +301s", r, []byte(vectorA), sigA, at.Add(301 * time.Second), connectors.ErrStale},
		{"b stale at +301s", r, vecB, sigB, at.Add(301 * time.Second), connectors.ErrStale},
		{"stale and wrong signature is stale, as in stripe-go", r, vecB, bad, at.Add(time.Hour), connectors.ErrStale},
		{"a few minutes of future skew accepted", r, vecB, sigB, at.Add(-4 * time.Minute), nil},
		{"far future rejected", r, vecB, sigB, at.Add(-24 * time.Hour), connectors.ErrStale},
		{"wrong signature", r, vecB, bad, at, connectors.ErrSignature},
		{"signature of the other body", r, vecB, sigA, at, connectors.ErrSignature},
		{"space after comma", r, vecB, "t=1700000000, v1=beebbf8006d94c508d71707d84ef98d17e108a2e9e806986559cd355571f10f2", at, connectors.ErrSignature},
		{"any of several v1 matches", r, vecB, bad + ",v1=beebbf8006d94c508d71707d84ef98d17e108a2e9e806986559cd355571f10f2,v0=zz", at, nil},
		{"undecodable v1 skipped", r, vecB, "t=1700000000,v1=xyz,v1=beebbf8006d94c508d71707d84ef98d17e108a2e9e806986559cd355571f10f2", at, nil},
		{"previous secret accepted while rolling", rolled, vecB, sigB, at, nil},
		{"missing header", r, vecB, "", at, connectors.ErrSignature},
		{"no timestamp", r, vecB, "v1=beebbf8006d94c508d71707d84ef98d17e108a2e9e806986559cd355571f10f2", at, connectors.ErrSignature},
		{"no v1", r, vecB, "t=1700000000,v0=abc", at, connectors.ErrSignature},
		{"pair without =", r, vecB, "t=1700000000,v1", at, connectors.ErrSignature},
		{"bad timestamp", r, vecB, "t=soon,v1=beebbf8006d94c508d71707d84ef98d17e108a2e9e806986559cd355571f10f2", at, connectors.ErrSignature},
		{"no secret configured", New(Config{}), vecB, sigB, at, connectors.ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set(SignatureHeader, tc.header)
			}
			err := tc.r.Verify(h, tc.body, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignMatchesVector(t *testing.T) {
	t.Parallel()
	got := Sign(testSecret, readFile(t, "testdata/webhook_checkout_session_expired.json"), time.Unix(1700000000, 0))
	if want := "t=1700000000,v1=beebbf8006d94c508d71707d84ef98d17e108a2e9e806986559cd355571f10f2"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func normalizeOne(t *testing.T, body []byte) behavior.Record {
	t.Helper()
	recs, err := New(Config{Secret: testSecret}).Normalize(http.Header{}, body)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("Normalize returned %d records, want 1", len(recs))
	}
	return recs[0]
}

func TestAnyAPIVersion(t *testing.T) {
	t.Parallel()
	body := readFile(t, "testdata/webhook_checkout_session_expired.json")
	newer := bytes.Replace(body, []byte(`"api_version": "2023-10-16"`), []byte(`"api_version": "2024-06-20"`), 1)
	if bytes.Equal(body, newer) {
		t.Fatal("fixture has no api_version to replace")
	}
	if got, want := normalizeOne(t, newer), normalizeOne(t, body); got.ID != want.ID || got.Kind != want.Kind || got.Ref(behavior.RefRecoveryURL) != want.Ref(behavior.RefRecoveryURL) {
		t.Fatalf("api_version 2024-06-20 normalized to %+v, want %+v", got, want)
	}
}

func TestRedeliveryDedupes(t *testing.T) {
	t.Parallel()
	body := readFile(t, "testdata/webhook_checkout_session_expired.json")
	r := New(Config{Secret: testSecret})
	var first string
	for i := range 5 {
		// Each retry is signed anew at a later time; only the body matters.
		at := time.Unix(1700000000+int64(i)*3600, 0)
		h, b := signHeader(http.Header{}, body, at)
		if err := r.Verify(h, b, at); err != nil {
			t.Fatalf("delivery %d: Verify: %v", i, err)
		}
		recs, err := r.Normalize(h, b)
		if err != nil || len(recs) != 1 {
			t.Fatalf("delivery %d: Normalize = %d records, %v", i, len(recs), err)
		}
		if i == 0 {
			first = recs[0].ID
		} else if recs[0].ID != first {
			t.Fatalf("delivery %d: id %s, want %s", i, recs[0].ID, first)
		}
	}
}

// mkEvent builds an envelope around an inline data.object for table tests.
func mkEvent(typ, object string, extra ...string) []byte {
	prev := ""
	if len(extra) > 0 {
		prev = `, "previous_attributes": ` + extra[0]
	}
	return fmt.Appendf(nil, `{"id":"evt_1","object":"event","api_version":"2025-09-30.clover","created":1700000000,"type":%q,"data":{"object":%s%s}}`, typ, object, prev)
}

func TestNormalizeMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  []byte
		check func(t *testing.T, r behavior.Record)
	}{
		{"expired checkout carries recovery url and consent", readFile(t, "testdata/webhook_checkout_session_expired.json"), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.CheckoutStarted)
			want(t, r.Email, "example@example.com")
			want(t, r.Ref(behavior.RefRecoveryURL), "https://buy.stripe.com/r/test_PLACEHOLDER")
			want(t, r.Ref(behavior.RefCheckoutToken), "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY")
			want(t, r.Ref(behavior.RefOrderID), "")
			if r.Consent == nil || r.Consent.State != behavior.ConsentGranted || r.Consent.CollectedFrom != "stripe_checkout" {
				t.Errorf("Consent = %+v, want granted from stripe_checkout", r.Consent)
			}
			want(t, r.At, time.Unix(1234567890, 0).UTC())
		}},
		{"completed recovered checkout with expanded line items", mkEvent("checkout.session.completed", `{
			"id":"cs_2","amount_total":5400,"currency":"eur","customer":{"id":"cus_9","object":"customer"},
			"customer_email":"old@example.com","customer_details":{"email":"Ann@Example.com ","name":"Ann  van der Berg","phone":"+31"},
			"recovered_from":"cs_1","consent":{"promotions":"opt_out"},"payment_intent":"pi_2",
			"line_items":{"object":"list","data":[{"description":"Trail Runner","quantity":2,"amount_total":5000,"currency":"eur",
			  "price":{"id":"price_1","unit_amount":2500,"product":{"id":"prod_1","name":"Trail Runner","images":["https://img/1.jpg"]}}},
			  {"description":"Socks","quantity":1,"amount_total":400,"price":{"id":"price_2","unit_amount":null,"product":"prod_2"}}]}}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.OrderPlaced)
			want(t, r.Value, int64(5400))
			want(t, r.Currency, "EUR")
			want(t, r.Email, "Ann@Example.com")
			want(t, r.CustomerID, "cus_9")
			want(t, r.Ref(behavior.RefStripeCust), "cus_9")
			want(t, r.Ref(behavior.RefOrderID), "cs_2")
			want(t, r.Ref(RefPaymentIntent), "pi_2")
			want(t, r.Attrs[AttrRecoveredFrom], any("cs_1"))
			want(t, *r.Person, behavior.Person{FirstName: "Ann", LastName: "van der Berg", Phone: "+31"})
			want(t, r.Consent.State, behavior.ConsentDenied)
			want(t, len(r.Items), 2)
			want(t, r.Items[0], behavior.Item{ProductID: "prod_1", VariantID: "price_1", Title: "Trail Runner", ImageURL: "https://img/1.jpg", Price: 2500, Quantity: 2})
			want(t, r.Items[1], behavior.Item{ProductID: "prod_2", VariantID: "price_2", Title: "Socks", Price: 400, Quantity: 1})
		}},
		{"payment intent succeeded", mkEvent("payment_intent.succeeded", `{"id":"pi_1","amount":1099,"amount_received":1099,"currency":"usd","customer":"cus_1","receipt_email":"bo@example.com","status":"succeeded"}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.OrderPaid)
			want(t, r.Value, int64(1099))
			want(t, r.Currency, "USD")
			want(t, r.Email, "bo@example.com")
			want(t, r.Ref(behavior.RefOrderID), "pi_1")
		}},
		{"invoice paid reads the newer parent subscription", mkEvent("invoice.paid", `{"id":"in_1","amount_paid":2000,"amount_due":2000,"currency":"usd","customer":"cus_1","customer_email":"cy@example.com","subscription":null,
			"parent":{"type":"subscription_details","subscription_details":{"subscription":"sub_1"}},
			"lines":{"data":[{"amount":2000,"description":"1 × Coffee club","quantity":2,"pricing":{"price_details":{"price":"price_9","product":"prod_9"}}}]}}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.OrderPaid)
			want(t, r.Value, int64(2000))
			want(t, r.Ref(behavior.RefSubscription), "sub_1")
			want(t, r.Items[0], behavior.Item{ProductID: "prod_9", VariantID: "price_9", Title: "1 × Coffee club", Price: 1000, Quantity: 2})
		}},
		{"invoice payment failed", mkEvent("invoice.payment_failed", `{"id":"in_2","amount_paid":0,"amount_due":2000,"currency":"usd","customer":"cus_1","subscription":"sub_1","attempt_count":2,"next_payment_attempt":1700086400,"hosted_invoice_url":"https://invoice.stripe.com/i/x"}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.PaymentFailed)
			want(t, r.Value, int64(2000))
			want(t, r.URL, "https://invoice.stripe.com/i/x")
			want(t, r.Attrs["attempt_count"], any(int64(2)))
			want(t, r.Attrs["next_payment_attempt"], any("2023-11-15T22:13:20Z"))
		}},
		{"subscription becomes active after incomplete", mkEvent("customer.subscription.updated", `{"id":"sub_1","customer":"cus_1","status":"active","currency":"usd","items":{"data":[{"quantity":1,"price":{"id":"price_1","unit_amount":900,"product":"prod_1"}}]}}`, `{"status":"incomplete"}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.SubscriptionStarted)
			want(t, r.Value, int64(900))
			want(t, r.Ref(behavior.RefSubscription), "sub_1")
		}},
		{"charge refunded", mkEvent("charge.refunded", `{"id":"ch_1","amount":1000,"amount_refunded":400,"currency":"usd","customer":null,"receipt_email":"dee@example.com","payment_intent":"pi_1","refunded":false}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.OrderRefunded)
			want(t, r.Value, int64(400))
			want(t, r.Ref(behavior.RefOrderID), "pi_1")
			want(t, r.Attrs["full_refund"], any(false))
		}},
		// A second partial refund: amount_refunded is the running total
		// (300 + 200), previous_attributes the total before it; the record
		// is this refund alone (the audit saw 300 + 500 subtracted).
		{"second partial refund", mkEvent("charge.refunded", `{"id":"ch_1","amount":1000,"amount_refunded":500,"currency":"usd","customer":null,"receipt_email":"dee@example.com","payment_intent":"pi_1","refunded":false}`, `{"amount_refunded":300}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.OrderRefunded)
			want(t, r.Value, int64(200))
			want(t, r.Attrs["amount_refunded_total"], any(int64(500)))
		}},
		{"customer updated", mkEvent("customer.updated", `{"id":"cus_1","email":"eve@example.com","name":"Eve","phone":"+1 555","preferred_locales":["fr-FR"],"address":{"country":"FR"}}`), func(t *testing.T, r behavior.Record) {
			want(t, r.Kind, behavior.CustomerUpdated)
			want(t, r.CustomerID, "cus_1")
			want(t, *r.Person, behavior.Person{FirstName: "Eve", Phone: "+1 555", Country: "FR", Locale: "fr-FR"})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, normalizeOne(t, tc.body))
		})
	}
}

func want[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestNormalizeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want error
	}{
		{"not json", `nope`, connectors.ErrMalformed},
		{"stripe-go test payload has no type", vectorA, connectors.ErrMalformed},
		{"no id", `{"type":"charge.refunded","created":1,"data":{"object":{}}}`, connectors.ErrMalformed},
		{"not an event", `{"id":"x","object":"charge","type":"charge.refunded","created":1,"data":{"object":{}}}`, connectors.ErrMalformed},
		{"unknown type", `{"id":"evt","type":"plan.created","created":1,"data":{"object":{}}}`, connectors.ErrIgnored},
		{"object is a string", `{"id":"evt","type":"charge.refunded","created":1,"data":{"object":"ch_1"}}`, connectors.ErrMalformed},
		{"amount as float", string(mkEvent("payment_intent.succeeded", `{"id":"pi","amount_received":10.5,"customer":"cus"}`)), connectors.ErrMalformed},
		{"amount without currency", string(mkEvent("payment_intent.succeeded", `{"id":"pi","amount_received":10,"customer":"cus"}`)), connectors.ErrMalformed},
		{"no identity", string(mkEvent("payment_intent.succeeded", `{"id":"pi","amount_received":10,"currency":"usd"}`)), connectors.ErrIgnored},
		{"incomplete subscription created", string(mkEvent("customer.subscription.created", `{"id":"sub","customer":"cus","status":"incomplete"}`)), connectors.ErrIgnored},
		{"other subscription update", string(mkEvent("customer.subscription.updated", `{"id":"sub","customer":"cus","status":"active"}`, `{"cancel_at_period_end":false}`)), connectors.ErrIgnored},
		{"setup-mode session", string(mkEvent("checkout.session.completed", `{"id":"cs_1","mode":"setup","customer":"cus_1"}`)), connectors.ErrIgnored},
		{"created missing", `{"id":"evt","type":"customer.created","data":{"object":{"id":"cus"}}}`, connectors.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := New(Config{}).Normalize(http.Header{}, []byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Normalize = %d records, %v; want %v", len(recs), err, tc.want)
			}
		})
	}
}

func TestSample(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r := New(Config{Secret: testSecret})
	wantKinds := map[string]behavior.Kind{
		"checkout.session.expired":      behavior.CheckoutStarted,
		"checkout.session.completed":    behavior.OrderPlaced,
		"payment_intent.succeeded":      behavior.OrderPaid,
		"invoice.paid":                  behavior.OrderPaid,
		"invoice.payment_failed":        behavior.PaymentFailed,
		"customer.subscription.created": behavior.SubscriptionStarted,
		"customer.subscription.deleted": behavior.SubscriptionCancel,
		"charge.refunded":               behavior.OrderRefunded,
		"customer.created":              behavior.CustomerUpdated,
		"customer.updated":              behavior.CustomerUpdated,
	}
	if got := len(SampleTypes()); got != len(wantKinds) {
		t.Errorf("SampleTypes has %d types, test covers %d", got, len(wantKinds))
	}
	for _, typ := range SampleTypes() {
		t.Run(typ, func(t *testing.T) {
			body, h, err := Sample(typ, "ann@example.com", now)
			if err != nil {
				t.Fatal(err)
			}
			h.Set(SignatureHeader, Sign(testSecret, body, now))
			if err := r.Verify(h, body, now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			recs, err := r.Normalize(h, body)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			connectortest.CheckRecords(t, Source, nil, recs)
			rec := recs[0]
			want(t, rec.Kind, wantKinds[typ])
			want(t, rec.At, now)
			want(t, rec.Attrs[behavior.AttrTopic], any(typ))
			if rec.Email != "" {
				want(t, rec.Email, "ann@example.com")
			}
			want(t, rec.CustomerID, SampleCustomerID("ann@example.com"))
			if typ == "checkout.session.expired" {
				want(t, rec.Value, int64(5400))
				want(t, rec.Ref(behavior.RefRecoveryURL), "https://buy.stripe.com/r/test_PLACEHOLDER")
			}
			var env struct {
				APIVersion string `json:"api_version"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.APIVersion == "" {
				t.Errorf("sample has no api_version (%v)", err)
			}
			again, _, _ := Sample(typ, "ann@example.com", now)
			if recs2, _ := r.Normalize(h, again); len(recs2) == 1 && recs2[0].ID == rec.ID {
				t.Error("two samples share an event id; each trigger must be a new event")
			}
		})
	}
	if _, _, err := Sample("plan.created", "", now); err == nil {
		t.Error("Sample of an unsupported type succeeded")
	}
}

// FuzzVerify checks that no Stripe-Signature header makes Verify panic or
// accept a body it did not sign.
func FuzzVerify(f *testing.F) {
	body := []byte(vectorA)
	f.Add("t=1700000000,v1=3f71e604513befa4dd33f523aef9737aaaa4bcbe63654592c051d12de41125f3")
	f.Add("t=1700000000, v1=abc")
	f.Add("t=,v1=,v0=,=,,")
	f.Add("t=-1,v1=00")
	f.Add("t=99999999999999999999,v1=00")
	r := New(Config{Secret: testSecret})
	now := time.Unix(1700000000, 0)
	valid := Sign(testSecret, body, now)
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{}
		h.Set(SignatureHeader, header)
		err := r.Verify(h, body, now)
		if err == nil {
			if !strings.Contains(strings.ToLower(header), valid[strings.Index(valid, "v1="):]) {
				t.Fatalf("Verify accepted %q", header)
			}
			return
		}
		if !errors.Is(err, connectors.ErrSignature) && !errors.Is(err, connectors.ErrStale) {
			t.Fatalf("Verify(%q) = %v, want ErrSignature or ErrStale", header, err)
		}
	})
}
