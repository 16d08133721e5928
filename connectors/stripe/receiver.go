package stripe

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
)

// Source is the receiver's name: the route segment, config key and
// Record.Source of everything it produces.
const Source = "stripe"

// SignatureHeader carries the signature of every Stripe webhook delivery.
const SignatureHeader = "Stripe-Signature"

// DefaultTolerance is how far a signature's timestamp may be from the
// server's clock, in either direction, when Config.Tolerance is zero. It is
// stripe-go's webhook.DefaultTolerance.
const DefaultTolerance = webhook.DefaultTolerance

// RefPaymentIntent is the Record.Refs key holding the payment intent id of
// checkout, payment and refund records, so that the several events Stripe
// sends about one payment can be joined.
const RefPaymentIntent = "payment_intent_id"

// Attribute keys set by this receiver.
const (
	// AttrRecoveredFrom holds, on an order placed through a recovery link,
	// the id of the expired checkout session it recovered.
	AttrRecoveredFrom = "recovered_from"
	// AttrLivemode is false on events from Stripe's test mode.
	AttrLivemode = "livemode"
	// AttrStatus holds the object's status (subscription, invoice, session).
	AttrStatus = "status"
)

// consentSource is Consent.CollectedFrom for consent given in Checkout.
const consentSource = "stripe_checkout"

// Config configures a Receiver.
type Config struct {
	// Secret is the endpoint's signing secret ("whsec_…").
	Secret string
	// PreviousSecret is also accepted while a rolled secret phases out.
	PreviousSecret string
	// StoreID, when set, becomes Record.Store of every record.
	StoreID string
	// Tolerance bounds the distance between the signature's timestamp and
	// the clock; zero or negative means DefaultTolerance.
	Tolerance time.Duration
}

// Receiver verifies and normalizes Stripe webhook events. It is safe for
// concurrent use.
type Receiver struct {
	store     string
	secrets   []string
	tolerance time.Duration
}

// New returns a Receiver for cfg. A receiver without any secret rejects
// every delivery with connectors.ErrSignature rather than accepting
// unsigned events.
func New(cfg Config) *Receiver {
	r := &Receiver{store: cfg.StoreID, tolerance: cfg.Tolerance}
	if r.tolerance <= 0 {
		r.tolerance = DefaultTolerance
	}
	for _, s := range []string{cfg.Secret, cfg.PreviousSecret} {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// Name returns "stripe".
func (r *Receiver) Name() string { return Source }

// EventType returns the "type" of a Stripe event body, or "" when the body
// is not an event, for logs and the stored raw delivery.
func EventType(body []byte) string {
	var ev struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return ""
	}
	return ev.Type
}

// Sign returns the Stripe-Signature header value Stripe would send for
// body signed with secret at t.
func Sign(secret string, body []byte, t time.Time) string {
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(webhook.ComputeSignature(t, body, secret)))
}

// Verify checks the Stripe-Signature header of a delivery at time now.
//
// As in stripe-go, the timestamp is checked before the signature, so a
// stale delivery fails with connectors.ErrStale even when its signature is
// also wrong; both outcomes store nothing. Unlike stripe-go, a timestamp
// more than the tolerance ahead of now is stale as well: Stripe signs at
// delivery time, so only clock skew can put it in the future, and the
// tolerance already allows minutes of that.
func (r *Receiver) Verify(h http.Header, body []byte, now time.Time) error {
	if len(r.secrets) == 0 {
		return fmt.Errorf("stripe: verify: no webhook secret configured: %w", connectors.ErrSignature)
	}
	header := h.Get(SignatureHeader)
	if header == "" {
		return fmt.Errorf("stripe: verify: missing %s header: %w", SignatureHeader, connectors.ErrSignature)
	}
	ts, sigs, err := parseSignatureHeader(header)
	if err != nil {
		return fmt.Errorf("stripe: verify: %v: %w", err, connectors.ErrSignature)
	}
	signedAt := time.Unix(ts, 0)
	if d := now.Sub(signedAt); d > r.tolerance || d < -r.tolerance {
		return connectors.Stale("stripe", ts, d, r.tolerance)
	}
	for _, secret := range r.secrets {
		want := webhook.ComputeSignature(signedAt, body, secret)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("stripe: verify: no v1 signature matches: %w", connectors.ErrSignature)
}

// parseSignatureHeader reads "t=<unix>,v1=<hex>[,v1=…]" the way stripe-go
// does: pairs split on ',' then '=', no whitespace trimming, unknown keys
// (v0, future schemes) skipped, undecodable v1 values skipped.
func parseSignatureHeader(header string) (int64, [][]byte, error) {
	var (
		ts    int64
		haveT bool
		sigs  [][]byte
	)
	for _, pair := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "=") {
			return 0, nil, fmt.Errorf("malformed %s pair %.40q", SignatureHeader, pair)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return 0, nil, fmt.Errorf("malformed %s timestamp %.40q", SignatureHeader, v)
			}
			ts, haveT = n, true
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) > 0 {
				sigs = append(sigs, b)
			}
		}
	}
	if !haveT {
		return 0, nil, fmt.Errorf("%s has no timestamp", SignatureHeader)
	}
	if len(sigs) == 0 {
		return 0, nil, fmt.Errorf("%s has no valid v1 signature", SignatureHeader)
	}
	return ts, sigs, nil
}

// event is the envelope of every Stripe event. It is decoded with
// stripe-go's IgnoreAPIVersionMismatch semantics: api_version is recorded,
// never checked.
type event struct {
	ID         string           `json:"id"`
	Object     string           `json:"object"`
	APIVersion string           `json:"api_version"`
	Created    int64            `json:"created"`
	Livemode   bool             `json:"livemode"`
	Type       stripe.EventType `json:"type"`
	Data       struct {
		Object             json.RawMessage `json:"object"`
		PreviousAttributes json.RawMessage `json:"previous_attributes"`
	} `json:"data"`
}

// Normalize turns one verified event into records. Event types nudge does
// not use, and events that name neither a customer nor an email address
// (so cannot belong to any profile), return connectors.ErrIgnored.
func (r *Receiver) Normalize(_ http.Header, body []byte) ([]behavior.Record, error) {
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("stripe: normalize: decode event: %v: %w", err, connectors.ErrMalformed)
	}
	switch {
	case ev.ID == "":
		return nil, fmt.Errorf("stripe: normalize: event has no id: %w", connectors.ErrMalformed)
	case ev.Object != "" && ev.Object != "event":
		return nil, fmt.Errorf("stripe: normalize: object is %.40q, not an event: %w", ev.Object, connectors.ErrMalformed)
	case ev.Type == "":
		return nil, fmt.Errorf("stripe: normalize: event %.60s has no type: %w", ev.ID, connectors.ErrMalformed)
	case ev.Created <= 0 || ev.Created > maxUnix:
		return nil, fmt.Errorf("stripe: normalize: event %.60s has no valid created time: %w", ev.ID, connectors.ErrMalformed)
	}
	m, ok := mappers[ev.Type]
	if !ok {
		return nil, fmt.Errorf("stripe: normalize: event type %.60q: %w", ev.Type, connectors.ErrIgnored)
	}
	obj := bytes.TrimSpace(ev.Data.Object)
	if len(obj) == 0 || obj[0] != '{' {
		return nil, fmt.Errorf("stripe: normalize: %s: data.object is not an object: %w", ev.Type, connectors.ErrMalformed)
	}
	rec := behavior.Record{
		ID:     behavior.DeriveID(Source, ev.ID),
		Source: Source,
		Store:  r.store,
		At:     time.Unix(ev.Created, 0).UTC(),
		Attrs:  map[string]any{behavior.AttrTopic: string(ev.Type), AttrLivemode: ev.Livemode},
	}
	rec.SetRef(behavior.RefEventID, ev.ID)
	if err := m(&rec, &ev); err != nil {
		return nil, fmt.Errorf("stripe: normalize: %s %.60s: %w", ev.Type, ev.ID, err)
	}
	if rec.Currency == "" && (rec.Value != 0 || behavior.ItemValue(rec.Items) != 0) {
		return nil, fmt.Errorf("stripe: normalize: %s %.60s has amounts but no currency: %w", ev.Type, ev.ID, connectors.ErrMalformed)
	}
	if rec.Email == "" && rec.CustomerID == "" {
		return nil, fmt.Errorf("stripe: normalize: %s %.60s names no customer or email: %w", ev.Type, ev.ID, connectors.ErrIgnored)
	}
	return []behavior.Record{rec}, nil
}

// maxUnix bounds timestamps to year 9999 so time arithmetic stays sane.
const maxUnix = 253402300799

// mapper fills rec from the event's data.object.
type mapper func(rec *behavior.Record, ev *event) error

var mappers = map[stripe.EventType]mapper{
	stripe.EventTypeCheckoutSessionCompleted:             checkoutMapper(behavior.OrderPlaced),
	stripe.EventTypeCheckoutSessionExpired:               checkoutMapper(behavior.CheckoutStarted),
	stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded: checkoutMapper(behavior.OrderPaid),
	stripe.EventTypeCheckoutSessionAsyncPaymentFailed:    checkoutMapper(behavior.PaymentFailed),
	stripe.EventTypePaymentIntentSucceeded:               mapPaymentIntent,
	stripe.EventTypeInvoicePaid:                          invoiceMapper(behavior.OrderPaid),
	stripe.EventTypeInvoicePaymentFailed:                 invoiceMapper(behavior.PaymentFailed),
	stripe.EventTypeCustomerSubscriptionCreated:          mapSubscriptionCreated,
	stripe.EventTypeCustomerSubscriptionUpdated:          mapSubscriptionUpdated,
	stripe.EventTypeCustomerSubscriptionDeleted:          mapSubscriptionDeleted,
	stripe.EventTypeChargeRefunded:                       mapChargeRefunded,
	stripe.EventTypeCustomerCreated:                      mapCustomer,
	stripe.EventTypeCustomerUpdated:                      mapCustomer,
}

// decode unmarshals data.object into v.
func decode(ev *event, v any) error {
	if err := json.Unmarshal(ev.Data.Object, v); err != nil {
		return fmt.Errorf("decode data.object: %v: %w", err, connectors.ErrMalformed)
	}
	return nil
}

// expandable is a Stripe reference that is an id string, or the object
// itself when the field was expanded; either way only its id is kept.
type expandable string

// UnmarshalJSON accepts null, "id" and {"id": "…", …}.
func (e *expandable) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*e = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*e = expandable(s)
		return nil
	}
	var o struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*e = expandable(o.ID)
	return nil
}

// product is a price's product: an id, or the expanded product.
type product struct {
	ID     string
	Name   string
	URL    string
	Images []string
}

// UnmarshalJSON accepts null, "prod_…" and an expanded product object.
func (p *product) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			ID     string   `json:"id"`
			Name   string   `json:"name"`
			URL    string   `json:"url"`
			Images []string `json:"images"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*p = product{ID: o.ID, Name: o.Name, URL: o.URL, Images: o.Images}
		return nil
	}
	var id expandable
	if err := id.UnmarshalJSON(b); err != nil {
		return err
	}
	*p = product{ID: string(id)}
	return nil
}

// price is the part of a Price object items need.
type price struct {
	ID         string  `json:"id"`
	UnitAmount *int64  `json:"unit_amount"`
	Currency   string  `json:"currency"`
	Product    product `json:"product"`
	Nickname   string  `json:"nickname"`
}

// lineItem is a checkout session line item (present only when the
// webhook endpoint or a re-fetch expanded line_items).
type lineItem struct {
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	AmountTotal int64  `json:"amount_total"`
	Currency    string `json:"currency"`
	Price       *price `json:"price"`
}

type list[T any] struct {
	Data []T `json:"data"`
}

type checkoutSession struct {
	ID              string     `json:"id"`
	AmountTotal     *int64     `json:"amount_total"`
	Currency        string     `json:"currency"`
	Customer        expandable `json:"customer"`
	CustomerEmail   string     `json:"customer_email"`
	CustomerDetails *struct {
		Email   string `json:"email"`
		Name    string `json:"name"`
		Phone   string `json:"phone"`
		Address *struct {
			Country string `json:"country"`
			State   string `json:"state"`
		} `json:"address"`
	} `json:"customer_details"`
	Consent *struct {
		Promotions string `json:"promotions"`
	} `json:"consent"`
	AfterExpiration *struct {
		Recovery *struct {
			URL string `json:"url"`
		} `json:"recovery"`
	} `json:"after_expiration"`
	RecoveredFrom     string          `json:"recovered_from"`
	PaymentIntent     expandable      `json:"payment_intent"`
	Subscription      expandable      `json:"subscription"`
	ClientReferenceID string          `json:"client_reference_id"`
	Locale            string          `json:"locale"`
	Mode              string          `json:"mode"`
	Status            string          `json:"status"`
	PaymentStatus     string          `json:"payment_status"`
	LineItems         *list[lineItem] `json:"line_items"`
}

// checkoutMapper maps a checkout.session.* event to kind. The session id
// is both the checkout token (so an expired and a later completed session
// join) and, once paid, the order id.
func checkoutMapper(kind behavior.Kind) mapper {
	return func(rec *behavior.Record, ev *event) error {
		var s checkoutSession
		if err := decode(ev, &s); err != nil {
			return err
		}
		if s.ID == "" {
			return fmt.Errorf("checkout session has no id: %w", connectors.ErrMalformed)
		}
		if s.Mode == "setup" {
			// A setup session saves a card for later; nothing is bought.
			return fmt.Errorf("checkout session %.60s in setup mode: %w", s.ID, connectors.ErrIgnored)
		}
		rec.Kind = kind
		rec.Currency = strings.ToUpper(s.Currency)
		if s.AmountTotal != nil {
			rec.Value = *s.AmountTotal
		}
		rec.CustomerID = string(s.Customer)
		rec.SetRef(behavior.RefStripeCust, rec.CustomerID)
		rec.Email = strings.TrimSpace(s.CustomerEmail)
		if d := s.CustomerDetails; d != nil {
			if e := strings.TrimSpace(d.Email); e != "" {
				rec.Email = e
			}
			p := personFromName(d.Name)
			p.Phone = d.Phone
			if d.Address != nil {
				p.Country, p.Region = d.Address.Country, d.Address.State
			}
			p.Locale = s.Locale
			rec.Person = nonEmpty(p)
		}
		rec.SetRef(behavior.RefCheckoutToken, s.ID)
		if kind != behavior.CheckoutStarted {
			rec.SetRef(behavior.RefOrderID, s.ID)
		}
		rec.SetRef(RefPaymentIntent, string(s.PaymentIntent))
		rec.SetRef(behavior.RefSubscription, string(s.Subscription))
		if kind == behavior.CheckoutStarted && s.AfterExpiration != nil && s.AfterExpiration.Recovery != nil {
			rec.SetRef(behavior.RefRecoveryURL, s.AfterExpiration.Recovery.URL)
		}
		if s.RecoveredFrom != "" {
			rec.Attrs[AttrRecoveredFrom] = s.RecoveredFrom
		}
		setAttr(rec, AttrStatus, s.Status)
		setAttr(rec, "payment_status", s.PaymentStatus)
		setAttr(rec, "mode", s.Mode)
		setAttr(rec, "client_reference_id", s.ClientReferenceID)
		if s.Consent != nil {
			rec.Consent = promotionsConsent(s.Consent.Promotions)
		}
		if s.LineItems != nil {
			for _, li := range s.LineItems.Data {
				rec.Items = append(rec.Items, lineItemToItem(li))
			}
			if rec.Currency == "" && len(s.LineItems.Data) > 0 {
				rec.Currency = strings.ToUpper(s.LineItems.Data[0].Currency)
			}
		}
		return nil
	}
}

// promotionsConsent reads Checkout's consent.promotions. "opt_out" is the
// customer declining the promotional-email checkbox in this checkout and is
// recorded as denied: sending on a refusal is the costlier mistake.
func promotionsConsent(v string) *behavior.Consent {
	switch v {
	case "opt_in":
		return &behavior.Consent{State: behavior.ConsentGranted, Level: "single_opt_in", CollectedFrom: consentSource}
	case "opt_out":
		return &behavior.Consent{State: behavior.ConsentDenied, CollectedFrom: consentSource}
	}
	return nil
}

func lineItemToItem(li lineItem) behavior.Item {
	it := behavior.Item{Title: li.Description, Quantity: clampQuantity(li.Quantity)}
	if p := li.Price; p != nil {
		it.VariantID = p.ID
		it.ProductID = p.Product.ID
		if it.Title == "" {
			it.Title = p.Product.Name
		}
		it.URL = p.Product.URL
		if len(p.Product.Images) > 0 {
			it.ImageURL = p.Product.Images[0]
		}
		if p.UnitAmount != nil {
			it.Price = *p.UnitAmount
		}
	}
	if it.Price == 0 && li.Quantity > 0 && li.AmountTotal%li.Quantity == 0 {
		it.Price = li.AmountTotal / li.Quantity
	}
	return it
}

// clampQuantity keeps quantities within int and non-negative.
func clampQuantity(q int64) int {
	switch {
	case q < 0:
		return 0
	case q > 1<<31-1:
		return 1<<31 - 1
	}
	return int(q)
}

type paymentIntent struct {
	ID             string     `json:"id"`
	AmountReceived int64      `json:"amount_received"`
	Currency       string     `json:"currency"`
	Customer       expandable `json:"customer"`
	ReceiptEmail   string     `json:"receipt_email"`
	Description    string     `json:"description"`
	Status         string     `json:"status"`
}

func mapPaymentIntent(rec *behavior.Record, ev *event) error {
	var pi paymentIntent
	if err := decode(ev, &pi); err != nil {
		return err
	}
	if pi.ID == "" {
		return fmt.Errorf("payment intent has no id: %w", connectors.ErrMalformed)
	}
	rec.Kind = behavior.OrderPaid
	rec.Value = pi.AmountReceived
	rec.Currency = strings.ToUpper(pi.Currency)
	rec.Email = strings.TrimSpace(pi.ReceiptEmail)
	rec.CustomerID = string(pi.Customer)
	rec.SetRef(behavior.RefStripeCust, rec.CustomerID)
	rec.SetRef(behavior.RefOrderID, pi.ID)
	rec.SetRef(RefPaymentIntent, pi.ID)
	setAttr(rec, AttrStatus, pi.Status)
	setAttr(rec, "description", pi.Description)
	return nil
}

type invoice struct {
	ID                 string     `json:"id"`
	AmountPaid         int64      `json:"amount_paid"`
	AmountDue          int64      `json:"amount_due"`
	Currency           string     `json:"currency"`
	Customer           expandable `json:"customer"`
	CustomerEmail      string     `json:"customer_email"`
	CustomerName       string     `json:"customer_name"`
	CustomerPhone      string     `json:"customer_phone"`
	Subscription       expandable `json:"subscription"`
	PaymentIntent      expandable `json:"payment_intent"`
	HostedInvoiceURL   string     `json:"hosted_invoice_url"`
	BillingReason      string     `json:"billing_reason"`
	Status             string     `json:"status"`
	AttemptCount       int64      `json:"attempt_count"`
	NextPaymentAttempt int64      `json:"next_payment_attempt"`
	// Parent carries the subscription from API version 2025-03-31 on,
	// where the top-level field was removed.
	Parent *struct {
		SubscriptionDetails *struct {
			Subscription expandable `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
	Lines *list[invoiceLine] `json:"lines"`
}

type invoiceLine struct {
	Amount      int64  `json:"amount"`
	Description string `json:"description"`
	Quantity    *int64 `json:"quantity"`
	Price       *price `json:"price"`
	// Pricing replaces Price from API version 2025-03-31 on.
	Pricing *struct {
		PriceDetails *struct {
			Price   expandable `json:"price"`
			Product expandable `json:"product"`
		} `json:"price_details"`
		UnitAmountDecimal *string `json:"unit_amount_decimal"`
	} `json:"pricing"`
}

// invoiceMapper maps invoice.paid and invoice.payment_failed. A failed
// payment's value is what is still due and its URL the hosted invoice
// page, where the customer can update the card.
func invoiceMapper(kind behavior.Kind) mapper {
	return func(rec *behavior.Record, ev *event) error {
		var in invoice
		if err := decode(ev, &in); err != nil {
			return err
		}
		if in.ID == "" {
			return fmt.Errorf("invoice has no id: %w", connectors.ErrMalformed)
		}
		rec.Kind = kind
		rec.Value = in.AmountPaid
		if kind == behavior.PaymentFailed {
			rec.Value = in.AmountDue
			if in.AttemptCount > 0 {
				rec.Attrs["attempt_count"] = in.AttemptCount
			}
			if in.NextPaymentAttempt > 0 && in.NextPaymentAttempt <= maxUnix {
				rec.Attrs["next_payment_attempt"] = time.Unix(in.NextPaymentAttempt, 0).UTC().Format(time.RFC3339)
			}
		}
		rec.Currency = strings.ToUpper(in.Currency)
		rec.Email = strings.TrimSpace(in.CustomerEmail)
		rec.CustomerID = string(in.Customer)
		rec.SetRef(behavior.RefStripeCust, rec.CustomerID)
		p := personFromName(in.CustomerName)
		p.Phone = in.CustomerPhone
		rec.Person = nonEmpty(p)
		rec.URL = in.HostedInvoiceURL
		rec.SetRef(behavior.RefOrderID, in.ID)
		rec.SetRef(RefPaymentIntent, string(in.PaymentIntent))
		sub := string(in.Subscription)
		if sub == "" && in.Parent != nil && in.Parent.SubscriptionDetails != nil {
			sub = string(in.Parent.SubscriptionDetails.Subscription)
		}
		rec.SetRef(behavior.RefSubscription, sub)
		setAttr(rec, AttrStatus, in.Status)
		setAttr(rec, "billing_reason", in.BillingReason)
		if in.Lines != nil {
			for _, l := range in.Lines.Data {
				rec.Items = append(rec.Items, invoiceLineToItem(l))
			}
		}
		return nil
	}
}

func invoiceLineToItem(l invoiceLine) behavior.Item {
	q := int64(1)
	if l.Quantity != nil {
		q = *l.Quantity
	}
	it := behavior.Item{Title: l.Description, Quantity: clampQuantity(q)}
	switch {
	case l.Price != nil:
		it.VariantID = l.Price.ID
		it.ProductID = l.Price.Product.ID
	case l.Pricing != nil && l.Pricing.PriceDetails != nil:
		it.VariantID = string(l.Pricing.PriceDetails.Price)
		it.ProductID = string(l.Pricing.PriceDetails.Product)
	}
	if q > 0 && l.Amount%q == 0 {
		it.Price = l.Amount / q
	} else {
		// A line whose amount does not divide evenly (tiered or prorated)
		// is kept as one unit of its total, so item values still add up.
		it.Price, it.Quantity = l.Amount, 1
	}
	return it
}

type subscription struct {
	ID                  string     `json:"id"`
	Customer            expandable `json:"customer"`
	Status              string     `json:"status"`
	Currency            string     `json:"currency"`
	CancelAtPeriodEnd   bool       `json:"cancel_at_period_end"`
	CancellationDetails *struct {
		Reason   string `json:"reason"`
		Feedback string `json:"feedback"`
	} `json:"cancellation_details"`
	Items *list[struct {
		Quantity *int64 `json:"quantity"`
		Price    *price `json:"price"`
	}] `json:"items"`
}

func (s *subscription) fill(rec *behavior.Record, kind behavior.Kind) error {
	if s.ID == "" {
		return fmt.Errorf("subscription has no id: %w", connectors.ErrMalformed)
	}
	rec.Kind = kind
	rec.CustomerID = string(s.Customer)
	rec.SetRef(behavior.RefStripeCust, rec.CustomerID)
	rec.SetRef(behavior.RefSubscription, s.ID)
	setAttr(rec, AttrStatus, s.Status)
	if kind != behavior.SubscriptionStarted {
		return nil
	}
	rec.Currency = strings.ToUpper(s.Currency)
	if s.Items != nil {
		for _, si := range s.Items.Data {
			q := int64(1)
			if si.Quantity != nil {
				q = *si.Quantity
			}
			it := behavior.Item{Quantity: clampQuantity(q)}
			if p := si.Price; p != nil {
				it.VariantID, it.ProductID, it.Title = p.ID, p.Product.ID, p.Nickname
				if it.Title == "" {
					it.Title = p.Product.Name
				}
				if p.UnitAmount != nil {
					it.Price = *p.UnitAmount
				}
				if rec.Currency == "" {
					rec.Currency = strings.ToUpper(p.Currency)
				}
			}
			rec.Items = append(rec.Items, it)
		}
	}
	rec.Value = behavior.ItemValue(rec.Items)
	return nil
}

// mapSubscriptionCreated maps customer.subscription.created. A
// subscription created "incomplete" is not started until its first payment
// succeeds, which arrives as an update to "active" (see
// mapSubscriptionUpdated), so it is ignored here.
func mapSubscriptionCreated(rec *behavior.Record, ev *event) error {
	var s subscription
	if err := decode(ev, &s); err != nil {
		return err
	}
	if s.Status == "incomplete" || s.Status == "incomplete_expired" {
		return fmt.Errorf("subscription %.60s created %s: %w", s.ID, s.Status, connectors.ErrIgnored)
	}
	return s.fill(rec, behavior.SubscriptionStarted)
}

// mapSubscriptionUpdated maps the one transition that means a start
// nothing else reports: incomplete → active/trialing, when the first
// payment of a subscription created incomplete succeeds. Every other
// update is ignored — cancellation arrives as customer.subscription.deleted,
// and the status churn of dunning is covered by invoice events.
func mapSubscriptionUpdated(rec *behavior.Record, ev *event) error {
	var s subscription
	if err := decode(ev, &s); err != nil {
		return err
	}
	var prev struct {
		Status *string `json:"status"`
	}
	if len(ev.Data.PreviousAttributes) > 0 {
		if err := json.Unmarshal(ev.Data.PreviousAttributes, &prev); err != nil {
			return fmt.Errorf("decode previous_attributes: %v: %w", err, connectors.ErrMalformed)
		}
	}
	if prev.Status != nil && *prev.Status == "incomplete" && (s.Status == "active" || s.Status == "trialing") {
		return s.fill(rec, behavior.SubscriptionStarted)
	}
	return fmt.Errorf("subscription update: %w", connectors.ErrIgnored)
}

func mapSubscriptionDeleted(rec *behavior.Record, ev *event) error {
	var s subscription
	if err := decode(ev, &s); err != nil {
		return err
	}
	if err := s.fill(rec, behavior.SubscriptionCancel); err != nil {
		return err
	}
	if d := s.CancellationDetails; d != nil {
		setAttr(rec, behavior.AttrReason, d.Reason)
		setAttr(rec, "feedback", d.Feedback)
	}
	return nil
}

type charge struct {
	ID             string     `json:"id"`
	AmountRefunded int64      `json:"amount_refunded"`
	Amount         int64      `json:"amount"`
	Currency       string     `json:"currency"`
	Customer       expandable `json:"customer"`
	ReceiptEmail   string     `json:"receipt_email"`
	PaymentIntent  expandable `json:"payment_intent"`
	Refunded       bool       `json:"refunded"`
	BillingDetails *struct {
		Email string `json:"email"`
		Name  string `json:"name"`
		Phone string `json:"phone"`
	} `json:"billing_details"`
}

// mapChargeRefunded maps charge.refunded. The order id is the payment
// intent (what payment_intent.succeeded used), or the charge itself for
// charges made without one.
func mapChargeRefunded(rec *behavior.Record, ev *event) error {
	var c charge
	if err := decode(ev, &c); err != nil {
		return err
	}
	if c.ID == "" {
		return fmt.Errorf("charge has no id: %w", connectors.ErrMalformed)
	}
	// amount_refunded is the charge's running total: each charge.refunded
	// of a partial refund carries the total so far, and the event's
	// previous_attributes the total before it. The record is this refund,
	// so two partial refunds of 30 and 20 subtract 50, not 30 + 50.
	var prev struct {
		AmountRefunded *int64 `json:"amount_refunded"`
	}
	if len(ev.Data.PreviousAttributes) > 0 {
		if err := json.Unmarshal(ev.Data.PreviousAttributes, &prev); err != nil {
			return fmt.Errorf("decode previous_attributes: %v: %w", err, connectors.ErrMalformed)
		}
	}
	rec.Kind = behavior.OrderRefunded
	rec.Value = c.AmountRefunded
	if prev.AmountRefunded != nil && *prev.AmountRefunded >= 0 && *prev.AmountRefunded <= c.AmountRefunded {
		rec.Value = c.AmountRefunded - *prev.AmountRefunded
	}
	rec.Attrs["amount_refunded_total"] = c.AmountRefunded
	rec.Currency = strings.ToUpper(c.Currency)
	rec.CustomerID = string(c.Customer)
	rec.SetRef(behavior.RefStripeCust, rec.CustomerID)
	rec.Email = strings.TrimSpace(c.ReceiptEmail)
	if b := c.BillingDetails; b != nil {
		if e := strings.TrimSpace(b.Email); e != "" {
			rec.Email = e
		}
		p := personFromName(b.Name)
		p.Phone = b.Phone
		rec.Person = nonEmpty(p)
	}
	order := string(c.PaymentIntent)
	if order == "" {
		order = c.ID
	}
	rec.SetRef(behavior.RefOrderID, order)
	rec.SetRef(RefPaymentIntent, string(c.PaymentIntent))
	rec.SetRef("charge_id", c.ID)
	rec.Attrs["full_refund"] = c.Refunded
	return nil
}

type customer struct {
	ID               string   `json:"id"`
	Email            string   `json:"email"`
	Name             string   `json:"name"`
	Phone            string   `json:"phone"`
	PreferredLocales []string `json:"preferred_locales"`
	Address          *struct {
		Country string `json:"country"`
		State   string `json:"state"`
	} `json:"address"`
}

func mapCustomer(rec *behavior.Record, ev *event) error {
	var c customer
	if err := decode(ev, &c); err != nil {
		return err
	}
	if c.ID == "" {
		return fmt.Errorf("customer has no id: %w", connectors.ErrMalformed)
	}
	rec.Kind = behavior.CustomerUpdated
	rec.CustomerID = c.ID
	rec.SetRef(behavior.RefStripeCust, c.ID)
	rec.Email = strings.TrimSpace(c.Email)
	p := personFromName(c.Name)
	p.Phone = c.Phone
	if c.Address != nil {
		p.Country, p.Region = c.Address.Country, c.Address.State
	}
	if len(c.PreferredLocales) > 0 {
		p.Locale = c.PreferredLocales[0]
	}
	rec.Person = nonEmpty(p)
	return nil
}

// personFromName splits a full name at its first space: Stripe keeps one
// name field, and first-name greetings are what templates use.
func personFromName(name string) behavior.Person {
	first, last, _ := strings.Cut(strings.Join(strings.Fields(name), " "), " ")
	return behavior.Person{FirstName: first, LastName: last}
}

func nonEmpty(p behavior.Person) *behavior.Person {
	if p == (behavior.Person{}) {
		return nil
	}
	return &p
}

func setAttr(rec *behavior.Record, key, value string) {
	if value != "" {
		rec.Attrs[key] = value
	}
}
