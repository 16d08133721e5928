// Package behavior holds nudge's vocabulary: the normalized behavior record
// every connector produces, its kinds, line items and identities. It has no
// dependencies inside nudge so that every other package can import it.
package behavior

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// Kind names what happened. The names are part of the external contract
// (CONTRACT §4); custom tracking events use the "custom:" prefix.
type Kind string

// Record kinds received from connectors.
const (
	PageViewed          Kind = "page_viewed"
	ProductViewed       Kind = "product_viewed"
	CollectionViewed    Kind = "collection_viewed"
	Searched            Kind = "searched"
	CartUpdated         Kind = "cart_updated"
	CheckoutStarted     Kind = "checkout_started"
	OrderPlaced         Kind = "order_placed"
	OrderPaid           Kind = "order_paid"
	OrderFulfilled      Kind = "order_fulfilled"
	OrderCancelled      Kind = "order_cancelled"
	OrderRefunded       Kind = "order_refunded"
	CustomerUpdated     Kind = "customer_updated"
	ConsentChanged      Kind = "consent_changed"
	SubscriptionStarted Kind = "subscription_started"
	SubscriptionCancel  Kind = "subscription_canceled"
	PaymentFailed       Kind = "payment_failed"
	EmailSent           Kind = "email_sent"
	EmailDelivered      Kind = "email_delivered"
	EmailOpened         Kind = "email_opened"
	EmailClicked        Kind = "email_clicked"
	EmailBounced        Kind = "email_bounced"
	EmailDropped        Kind = "email_dropped"
	EmailDeferred       Kind = "email_deferred"
	SpamReported        Kind = "spam_reported"
	Unsubscribed        Kind = "unsubscribed"
	Resubscribed        Kind = "resubscribed"
	// ProductUpdated carries catalog facts (title, price, stock) from the
	// store; it has no customer and feeds the catalog, from which the store
	// derives PriceDropped and BackInStock.
	ProductUpdated Kind = "product_updated"
)

// Derived kinds that nudge itself emits.
const (
	ReplenishmentDue Kind = "replenishment_due"
	BecameInactive   Kind = "became_inactive"
	BackInStock      Kind = "back_in_stock"
	PriceDropped     Kind = "price_dropped"
)

// CustomPrefix starts the kind of a tracked event outside the vocabulary,
// e.g. "custom:Webinar Joined".
const CustomPrefix = "custom:"

// Kinds lists every built-in kind, in contract order.
func Kinds() []Kind {
	return []Kind{
		PageViewed, ProductViewed, CollectionViewed, Searched, CartUpdated, CheckoutStarted,
		OrderPlaced, OrderPaid, OrderFulfilled, OrderCancelled, OrderRefunded, CustomerUpdated,
		ConsentChanged, SubscriptionStarted, SubscriptionCancel, PaymentFailed, EmailSent,
		EmailDelivered, EmailOpened, EmailClicked, EmailBounced, EmailDropped, EmailDeferred,
		SpamReported, Unsubscribed, Resubscribed, ProductUpdated,
		ReplenishmentDue, BecameInactive, BackInStock, PriceDropped,
	}
}

// Valid reports whether k is a built-in kind or a well-formed custom kind.
func (k Kind) Valid() bool {
	if s := string(k); strings.HasPrefix(s, CustomPrefix) {
		return len(s) > len(CustomPrefix) && len(s) <= 200
	}
	for _, b := range Kinds() {
		if b == k {
			return true
		}
	}
	return false
}

// Derived reports whether nudge itself emits records of this kind.
func (k Kind) Derived() bool {
	switch k {
	case ReplenishmentDue, BecameInactive, BackInStock, PriceDropped:
		return true
	}
	return false
}

// Engagement reports whether the kind is an email engagement event that
// comes back from an ESP about one of our sends.
func (k Kind) Engagement() bool {
	switch k {
	case EmailDelivered, EmailOpened, EmailClicked, EmailBounced, EmailDropped, EmailDeferred, SpamReported, Unsubscribed:
		return true
	}
	return false
}

// Item is one line of a cart, checkout, order or catalog product. Prices
// are in minor units of the record's currency.
type Item struct {
	ProductID string `json:"product_id,omitempty"`
	VariantID string `json:"variant_id,omitempty"`
	SKU       string `json:"sku,omitempty"`
	Title     string `json:"title,omitempty"`
	URL       string `json:"url,omitempty"`
	ImageURL  string `json:"image_url,omitempty"`
	Price     int64  `json:"price,omitempty"`
	Quantity  int    `json:"quantity,omitempty"`
	Category  string `json:"category,omitempty"`
	// Available is the stock on hand for catalog records (ProductUpdated);
	// nil when the source did not say.
	Available *int64 `json:"available,omitempty"`
}

// SourceWeb is the source of records from the tracking API and the
// storefront script. Its write key is public (it sits in the storefront's
// HTML), so what these records claim about products is not the store's
// word (see storage.Product.Unverified).
const SourceWeb = "web"

// Consent states.
const (
	ConsentGranted = "granted"
	ConsentDenied  = "denied"
	ConsentPending = "pending"
)

// Consent is a change of email-marketing consent carried by a record, with
// its provenance.
type Consent struct {
	State string `json:"state"` // granted | denied | pending
	// Level says what was agreed, e.g. "single_opt_in", "confirmed_opt_in".
	Level string `json:"level,omitempty"`
	// CollectedFrom says where it was collected, e.g. "SHOPIFY", "checkout".
	CollectedFrom string `json:"collected_from,omitempty"`
	// Text is the wording the person agreed to, when the source has it.
	Text string `json:"text,omitempty"`
	// At is when the person made this decision, when the source says so
	// (Shopify's consent_updated_at). Stores restate a customer's stored
	// consent in every checkout and order, so a record's own time says
	// nothing about when consent was given; zero when the source does
	// not date it.
	At time.Time `json:"at,omitzero"`
}

// DecidedAt is when the decision was made: c.At when the source dates
// it, else recordAt, the time of the record carrying it.
func (c *Consent) DecidedAt(recordAt time.Time) time.Time {
	if c.At.IsZero() {
		return recordAt
	}
	return c.At
}

// Reaffirms reports whether c is a grant that can undo an earlier
// unsubscribe: a dedicated consent change, or a grant its source dates.
// An undated grant restated inside an order or checkout (a pre-ticked
// marketing box, a plugin's stored flag) is not evidence of a new
// decision, and must not resume mail to someone who unsubscribed.
func (c *Consent) Reaffirms(kind Kind) bool {
	return c != nil && c.State == ConsentGranted && (kind == ConsentChanged || !c.At.IsZero())
}

// Person holds the profile facts a record may carry about its customer.
type Person struct {
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Phone     string `json:"phone,omitempty"`
	Timezone  string `json:"timezone,omitempty"` // IANA zone name
	Country   string `json:"country,omitempty"`
	// Region is the subdivision (state, province) of the same address as
	// Country, as ISO 3166-2 without the country ("KY", "BC"): in a
	// country of several zones it says which (see geo.Zone).
	Region string `json:"region,omitempty"`
	Locale string `json:"locale,omitempty"`
}

// Well-known keys of Record.Refs.
const (
	RefCartToken     = "cart_token"
	RefCheckoutToken = "checkout_token"
	RefRecoveryURL   = "recovery_url"
	RefOrderID       = "order_id"
	RefMessageID     = "message_id"
	RefSendID        = "send_id"
	RefRuleID        = "rule_id"
	RefStep          = "step"
	RefSessionID     = "session_id"
	RefSubscription  = "subscription_id"
	RefEventID       = "event_id" // the source's own event or delivery id
	RefStripeCust    = "stripe_customer_id"
	RefMachineOpen   = "machine_open" // "true" on opens by privacy proxies
)

// Record is one normalized thing that happened. Its JSON form is the
// records-ndjson line format of CONTRACT §4.
type Record struct {
	ID          string            `json:"id"`
	Kind        Kind              `json:"kind"`
	Source      string            `json:"source,omitempty"`
	Store       string            `json:"store,omitempty"`
	At          time.Time         `json:"at"`
	ReceivedAt  time.Time         `json:"received_at,omitzero"`
	Email       string            `json:"email,omitempty"`
	CustomerID  string            `json:"customer_id,omitempty"`
	AnonymousID string            `json:"anonymous_id,omitempty"`
	Value       int64             `json:"value,omitempty"`
	Currency    string            `json:"currency,omitempty"`
	Items       []Item            `json:"items,omitempty"`
	Query       string            `json:"query,omitempty"`
	URL         string            `json:"url,omitempty"`
	Seconds     float64           `json:"seconds,omitempty"`
	Refs        map[string]string `json:"refs,omitempty"`
	Attrs       map[string]any    `json:"attrs,omitempty"`
	Consent     *Consent          `json:"consent,omitempty"`
	Person      *Person           `json:"person,omitempty"`
}

// Ref returns r.Refs[key], or "" when absent.
func (r *Record) Ref(key string) string {
	if r.Refs == nil {
		return ""
	}
	return r.Refs[key]
}

// SetRef sets a reference, ignoring empty values.
func (r *Record) SetRef(key, value string) {
	if value == "" {
		return
	}
	if r.Refs == nil {
		r.Refs = map[string]string{}
	}
	r.Refs[key] = value
}

// Identity types.
const (
	IdentEmail     = "email"
	IdentCustomer  = "customer"  // a store's or Stripe's customer id, namespaced by source/store
	IdentAnonymous = "anonymous" // a browser or device id
)

// Identity is one way of recognising a person. Key() is what the store
// indexes.
type Identity struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	// Namespace scopes customer ids: "shopify/main", "stripe", …
	Namespace string `json:"namespace,omitempty"`
}

// Key is the identity's index key, e.g. "email:ann@example.com" or
// "customer:shopify/main:42".
func (i Identity) Key() string {
	if i.Namespace != "" {
		return i.Type + ":" + i.Namespace + ":" + i.Value
	}
	return i.Type + ":" + i.Value
}

// NormalizeEmail lower-cases and trims an address so that the same person
// is recognised whatever case a source used.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// CustomerNamespace is the namespace of a record's CustomerID: the source,
// plus the store id when there is one.
func (r *Record) CustomerNamespace() string {
	if r.Store != "" {
		return r.Source + "/" + r.Store
	}
	return r.Source
}

// Identities returns every identity the record carries.
func (r *Record) Identities() []Identity {
	var ids []Identity
	if e := NormalizeEmail(r.Email); e != "" {
		ids = append(ids, Identity{Type: IdentEmail, Value: e})
	}
	if r.CustomerID != "" {
		ids = append(ids, Identity{Type: IdentCustomer, Namespace: r.CustomerNamespace(), Value: r.CustomerID})
	}
	if c := r.Ref(RefStripeCust); c != "" && !(r.Source == "stripe" && c == r.CustomerID) {
		ids = append(ids, Identity{Type: IdentCustomer, Namespace: "stripe", Value: c})
	}
	if r.AnonymousID != "" {
		ids = append(ids, Identity{Type: IdentAnonymous, Value: r.AnonymousID})
	}
	return ids
}

// DeriveID makes a stable record id from parts that identify the event at
// its source (source, topic, the source's event id …), so that a
// redelivery maps to the same id and dedupes.
func DeriveID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// DeriveOrderedID is DeriveID for things written together with others of
// about the same time: the same 32 hex digits, of which the first 16 are
// at's nanoseconds since 1970 (big-endian, 0 before then) and the rest
// are half of DeriveID(parts...). Ids made this way sort by at, so a
// store keyed by them puts the journeys, sends and records one batch of
// due steps writes next to each other, in a few shared pages, where
// hashed ids would each dirty a page of their own. It is as stable as at:
// the same at and parts give the same id.
func DeriveOrderedID(at time.Time, parts ...string) string {
	return OrderedID(at, DeriveID(parts...))
}

// FollowID derives an id for something made from the thing with id
// parent (a journey's send, a send's email_sent record) that sorts next to
// it: parent's first 16 hex digits, when it starts with them (an ordered
// id), then half of DeriveID(parts...); otherwise DeriveID(parts...)
// whole. Either way it is 32 hex digits and stable.
func FollowID(parent string, parts ...string) string {
	h := DeriveID(parts...)
	if len(parent) < 16 {
		return h
	}
	for _, c := range parent[:16] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return h
		}
	}
	return parent[:16] + h[:16]
}

// OrderedID prefixes the first 16 hex digits of a hashed id with at's
// nanoseconds (see DeriveOrderedID).
func OrderedID(at time.Time, hashed string) string {
	ns := at.UnixNano()
	if at.IsZero() || ns < 0 {
		ns = 0
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ns))
	return hex.EncodeToString(b[:]) + hashed[:min(len(hashed), 16)]
}

// ContentID derives an id from a record's content, for import lines that
// carry none: the same line always gets the same id.
func ContentID(r Record) string {
	c := r
	c.ID = ""
	c.ReceivedAt = time.Time{}
	b, _ := json.Marshal(c) // Record always marshals: maps of strings and plain values
	return DeriveID("content", string(b))
}

// ItemValue sums price × quantity over items.
func ItemValue(items []Item) int64 {
	var v int64
	for _, it := range items {
		q := it.Quantity
		if q == 0 {
			q = 1
		}
		v += it.Price * int64(q)
	}
	return v
}

// ProductIDs returns the distinct product ids of the items, sorted.
func ProductIDs(items []Item) []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range items {
		if it.ProductID != "" && !seen[it.ProductID] {
			seen[it.ProductID] = true
			out = append(out, it.ProductID)
		}
	}
	sort.Strings(out)
	return out
}
