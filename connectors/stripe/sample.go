package stripe

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	stripe "github.com/stripe/stripe-go/v76"

	"github.com/nudge-email/nudge/behavior"
)

// samples holds the official stripe/openapi fixture objects and the two
// hand-built checkout session events (PROTOCOLS §3.3) that Sample builds
// its events from.
//
//go:embed testdata/webhook_checkout_session_expired.json testdata/webhook_checkout_session_completed.json testdata/object_*.json
var samples embed.FS

// SampleEmail is the address Sample uses when it is given none.
const SampleEmail = "shopper@example.com"

// sampleSpec says which fixture an event type is built from and how its
// object is adjusted to look like a real event of that type.
type sampleSpec struct {
	file   string
	object bool // file holds a bare object to wrap, not a whole event
	adjust func(obj map[string]any, email, cus string)
}

var sampleSpecs = map[stripe.EventType]sampleSpec{
	stripe.EventTypeCheckoutSessionExpired: {file: "webhook_checkout_session_expired.json", adjust: func(o map[string]any, email, cus string) {
		setPath(o, email, "customer_details", "email")
		o["customer_email"] = email
		o["customer"] = cus
		o["currency"] = "usd"
		o["amount_subtotal"] = json.Number("5400")
		o["amount_total"] = json.Number("5400")
	}},
	stripe.EventTypeCheckoutSessionCompleted: {file: "webhook_checkout_session_completed.json", adjust: func(o map[string]any, email, cus string) {
		setPath(o, email, "customer_details", "email")
		o["customer"] = cus
		o["currency"] = "usd"
		o["amount_subtotal"] = json.Number("5400")
		o["amount_total"] = json.Number("5400")
	}},
	stripe.EventTypePaymentIntentSucceeded: {file: "object_payment_intent.json", object: true, adjust: func(o map[string]any, email, cus string) {
		o["status"] = "succeeded"
		o["amount_received"] = o["amount"]
		o["receipt_email"] = email
		o["customer"] = cus
		o["canceled_at"] = nil
		o["last_payment_error"] = nil
		o["next_action"] = nil
	}},
	stripe.EventTypeInvoicePaid: {file: "object_invoice.json", object: true, adjust: func(o map[string]any, email, cus string) {
		o["status"] = "paid"
		o["amount_paid"] = o["amount_due"]
		o["amount_remaining"] = json.Number("0")
		o["attempted"] = true
		o["attempt_count"] = json.Number("1")
		o["customer_email"] = email
		o["customer"] = cus
		o["last_finalization_error"] = nil
	}},
	stripe.EventTypeInvoicePaymentFailed: {file: "object_invoice.json", object: true, adjust: func(o map[string]any, email, cus string) {
		o["status"] = "open"
		o["attempted"] = true
		o["attempt_count"] = json.Number("1")
		o["customer_email"] = email
		o["customer"] = cus
		o["hosted_invoice_url"] = "https://invoice.stripe.com/i/acct_test/test_sample"
		o["last_finalization_error"] = nil
	}},
	stripe.EventTypeCustomerSubscriptionCreated: {file: "object_subscription.json", object: true, adjust: func(o map[string]any, _, cus string) {
		o["status"] = "active"
		o["customer"] = cus
		o["canceled_at"] = nil
		o["cancel_at"] = nil
		o["ended_at"] = nil
		o["cancel_at_period_end"] = false
	}},
	stripe.EventTypeCustomerSubscriptionDeleted: {file: "object_subscription.json", object: true, adjust: func(o map[string]any, _, cus string) {
		o["status"] = "canceled"
		o["customer"] = cus
		o["cancellation_details"] = map[string]any{"comment": nil, "feedback": "too_expensive", "reason": "cancellation_requested"}
	}},
	stripe.EventTypeChargeRefunded: {file: "object_charge.json", object: true, adjust: func(o map[string]any, email, cus string) {
		o["amount_refunded"] = o["amount"]
		o["amount_captured"] = o["amount"]
		o["captured"] = true
		o["refunded"] = true
		o["receipt_email"] = email
		o["customer"] = cus
		o["payment_intent"] = "pi_1PgafyB7WZ01zgkWSjxsAJo3"
		setPath(o, email, "billing_details", "email")
	}},
	stripe.EventTypeCustomerCreated: {file: "object_customer.json", object: true, adjust: adjustCustomer},
	stripe.EventTypeCustomerUpdated: {file: "object_customer.json", object: true, adjust: adjustCustomer},
}

func adjustCustomer(o map[string]any, email, cus string) {
	o["id"] = cus
	o["email"] = email
	o["discount"] = nil
}

// SampleTypes lists the event types Sample can build, sorted.
func SampleTypes() []string {
	out := make([]string, 0, len(sampleSpecs))
	for t := range sampleSpecs {
		out = append(out, string(t))
	}
	slices.Sort(out)
	return out
}

// Sample builds a realistic, unsigned delivery of eventType for email at
// now, for `nudge trigger stripe <type>`: the official fixture object with
// the email, a customer id derived from the email (the same address always
// gets the same cus_… id, so a sample customer.created and a sample
// subscription join up) and a fresh event id and created time. Sign the
// body with Sign and put the result in the SignatureHeader header.
func Sample(eventType, email string, now time.Time) ([]byte, http.Header, error) {
	spec, ok := sampleSpecs[stripe.EventType(eventType)]
	if !ok {
		return nil, nil, fmt.Errorf("stripe: sample: unknown event type %q (have %s)", eventType, strings.Join(SampleTypes(), ", "))
	}
	if email == "" {
		email = SampleEmail
	}
	raw, err := samples.ReadFile("testdata/" + spec.file)
	if err != nil {
		return nil, nil, fmt.Errorf("stripe: sample: %w", err)
	}
	var ev map[string]any
	if spec.object {
		var obj map[string]any
		if err := decodeNumbers(raw, &obj); err != nil {
			return nil, nil, fmt.Errorf("stripe: sample: %s: %w", spec.file, err)
		}
		ev = map[string]any{
			"object":           "event",
			"api_version":      stripe.APIVersion,
			"data":             map[string]any{"object": obj},
			"livemode":         false,
			"pending_webhooks": json.Number("1"),
			"request":          map[string]any{"id": nil, "idempotency_key": nil},
			"type":             eventType,
		}
	} else if err := decodeNumbers(raw, &ev); err != nil {
		return nil, nil, fmt.Errorf("stripe: sample: %s: %w", spec.file, err)
	}
	data, _ := ev["data"].(map[string]any)
	obj, _ := data["object"].(map[string]any)
	if obj == nil {
		return nil, nil, fmt.Errorf("stripe: sample: %s has no data.object", spec.file)
	}
	spec.adjust(obj, email, SampleCustomerID(email))
	id, err := randomHex(12)
	if err != nil {
		return nil, nil, fmt.Errorf("stripe: sample: %w", err)
	}
	ev["id"] = "evt_" + id
	ev["created"] = json.Number(fmt.Sprint(now.Unix()))
	// Stripe does not HTML-escape '&' in URLs, so neither do we.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ev); err != nil {
		return nil, nil, fmt.Errorf("stripe: sample: encode: %w", err)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	return body, h, nil
}

// SampleCustomerID is the customer id Sample gives email: "cus_" and 14
// hex digits of the address's SHA-256.
func SampleCustomerID(email string) string {
	sum := sha256.Sum256([]byte(behavior.NormalizeEmail(email)))
	return "cus_" + hex.EncodeToString(sum[:7])
}

func decodeNumbers(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func setPath(o map[string]any, v any, path ...string) {
	for _, k := range path[:len(path)-1] {
		next, ok := o[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			o[k] = next
		}
		o = next
	}
	o[path[len(path)-1]] = v
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
