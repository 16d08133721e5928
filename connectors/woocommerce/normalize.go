package woocommerce

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
)

// Attribute keys this connector sets besides behavior.AttrTopic.
const (
	AttrStatus        = "status"
	AttrOrderNumber   = "order_number"
	AttrPaymentMethod = "payment_method"
	AttrCreatedVia    = "created_via"
	AttrProductStatus = "product_status"
	AttrStockStatus   = "stock_status"
)

// RefRefundID is the ref naming the WooCommerce refund an order_refunded
// record is.
const RefRefundID = "refund_id"

// ConsentMetaKeys are the meta_data keys read as email-marketing opt-in.
// Core WooCommerce has no consent field; these are the ones written by
// Mailchimp for WooCommerce (mailchimp_woocommerce_is_subscribed, on
// orders and users) and by common newsletter checkbox snippets and
// plugins (_wc_consent, _newsletter_optin, newsletter_optin). A truthy
// value (true, 1, "1", "yes", "on", "true", "subscribed") is a grant; a
// falsy one is an unticked box, which is not a withdrawal, so it sets
// nothing.
func ConsentMetaKeys() []string {
	return []string{"mailchimp_woocommerce_is_subscribed", "_wc_consent", "_newsletter_optin", "newsletter_optin"}
}

// OrderRecordID is the id of an order lifecycle record (order_placed,
// order_paid, order_fulfilled, order_cancelled, order_refunded) of a
// store's order. It depends on the order id alone: WooCommerce delivers
// order.created and then order.updated after every change, each with the
// order's current state, and an order is placed, paid or refunded once,
// so all those deliveries dedupe to one record per kind.
func OrderRecordID(storeID string, kind behavior.Kind, orderID string) string {
	return behavior.DeriveID(Name, storeID, string(kind), "order:"+orderID)
}

// Normalize turns one verified delivery into records.
//
// order.created, order.updated and order.restored map by the order's
// status at delivery time:
//
//	checkout-draft  checkout_started  block checkout's draft while the shopper is on the checkout page
//	pending         checkout_started  order created, payment never completed: the abandoned checkout
//	failed          payment_failed
//	on-hold         order_placed      awaiting an offline payment (bank transfer, cheque): the shopper has bought
//	processing      order_placed, plus order_paid when date_paid is set
//	completed       order_placed and order_fulfilled, plus order_paid when date_paid is set
//	cancelled       order_cancelled
//	refunded        order_refunded per refund listed (else one, the order total)
//
// Every refund in the order's refunds list is an order_refunded record of
// its own (id from the refund id, value its amount), whatever the status:
// a partial refund leaves the order processing or completed.
//
// Other statuses (trash, draft, custom ones) are ErrIgnored. Pending and
// failed orders carry a recovery URL to WooCommerce's pay-for-order page
// when Config.StoreURL is set. checkout_started and payment_failed ids
// derive from the order id and date_modified_gmt, so each change is a new
// record; the lifecycle kinds use OrderRecordID.
//
// customer.created/updated/restored → customer_updated;
// product.created/updated/restored/published → product_updated (a
// variation maps to its parent product with VariantID set); ids derive
// from the resource id and date_modified_gmt.
//
// ErrIgnored: *.deleted (the payload is only {"id"}), coupon.*, action.*
// (their payload is an opaque hook argument), unknown topics, and
// deliveries that name no person. A body that is not the topic's JSON
// object wraps ErrMalformed.
func (r *Receiver) Normalize(h http.Header, body []byte) ([]behavior.Record, error) {
	topic := r.Topic(h)
	n := normalizer{r: r, h: h, topic: topic, body: body}
	resource, event, _ := strings.Cut(topic, ".")
	if event == "deleted" || resource == "action" || resource == "coupon" || topic == "" {
		return nil, fmt.Errorf("woocommerce: topic %q: %w", topic, connectors.ErrIgnored)
	}
	var recs []behavior.Record
	var err error
	switch {
	case resource == "order" && (event == "created" || event == "updated" || event == "restored"):
		recs, err = n.order()
	case resource == "customer" && (event == "created" || event == "updated" || event == "restored"):
		recs, err = n.customer()
	case resource == "product" && (event == "created" || event == "updated" || event == "restored" || event == "published"):
		recs, err = n.product()
	default:
		return nil, fmt.Errorf("woocommerce: topic %q: %w", topic, connectors.ErrIgnored)
	}
	if err != nil {
		return nil, err
	}
	return n.finish(recs)
}

// normalizer carries one delivery's context through the topic handlers.
type normalizer struct {
	r     *Receiver
	h     http.Header
	topic string
	body  []byte
}

func (n normalizer) decode(v any) error {
	if b := bytes.TrimSpace(n.body); len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("woocommerce: %s: body is not a JSON object: %w", n.topic, connectors.ErrMalformed)
	}
	if err := json.Unmarshal(n.body, v); err != nil {
		return fmt.Errorf("woocommerce: %s: %v: %w", n.topic, err, connectors.ErrMalformed)
	}
	return nil
}

// version identifies the state of a resource a delivery shows. The
// payload is built at delivery time, so date_modified_gmt is what changes
// between two different events; a payload without it falls back to a
// hash of the body, which a redelivery of the same state reproduces.
func (n normalizer) version(modified string) string {
	if modified = strings.TrimSpace(modified); modified != "" {
		return "modified:" + modified
	}
	sum := sha256.Sum256(n.body)
	return "body:" + hex.EncodeToString(sum[:16])
}

func (n normalizer) currency(c string) string {
	return strings.ToUpper(firstNonEmpty(c, n.r.cfg.Currency))
}

func (n normalizer) money(a amount, cur, field string) (int64, error) {
	v, err := behavior.ParseMoney(string(a), cur)
	if err != nil {
		return 0, fmt.Errorf("woocommerce: %s: %s: %v: %w", n.topic, field, err, connectors.ErrMalformed)
	}
	return v, nil
}

// finish stamps what every record shares and drops person records that
// name nobody (a checkout draft before the shopper typed an email).
func (n normalizer) finish(recs []behavior.Record) ([]behavior.Record, error) {
	out := recs[:0]
	for _, rec := range recs {
		if rec.At.IsZero() {
			return nil, fmt.Errorf("woocommerce: %s: no date_modified_gmt or date_created_gmt: %w", n.topic, connectors.ErrMalformed)
		}
		rec.Source = Name
		rec.Store = n.r.cfg.StoreID
		rec.Email = behavior.NormalizeEmail(rec.Email)
		if rec.Attrs == nil {
			rec.Attrs = map[string]any{}
		}
		rec.Attrs[behavior.AttrTopic] = n.topic
		if rec.Kind != behavior.ProductUpdated && len(rec.Identities()) == 0 {
			continue
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("woocommerce: %s: delivery names no customer: %w", n.topic, connectors.ErrIgnored)
	}
	return out, nil
}

func (n normalizer) order() ([]behavior.Record, error) {
	var o order
	if err := n.decode(&o); err != nil {
		return nil, err
	}
	if o.ID == "" {
		return nil, fmt.Errorf("woocommerce: %s: order has no id: %w", n.topic, connectors.ErrMalformed)
	}
	status := strings.ToLower(strings.TrimSpace(o.Status))
	cur := n.currency(o.Currency)
	items, err := n.items(o.LineItems, cur)
	if err != nil {
		return nil, err
	}
	total, err := n.money(o.Total, cur, "total")
	if err != nil {
		return nil, err
	}
	oid := string(o.ID)
	modified := firstTime(o.DateModifiedGMT, o.DateCreatedGMT)
	base := behavior.Record{
		Email:    o.Billing.Email,
		Currency: cur,
		Items:    items,
		Value:    total,
		Consent:  metaConsent(o.MetaData, "woocommerce_checkout"),
		Person:   person(o.Billing.FirstName, o.Billing.LastName, o.Billing.Phone, o.Billing.Country, o.Billing.State),
		Attrs: map[string]any{
			AttrStatus:        status,
			AttrOrderNumber:   firstNonEmpty(o.Number, oid),
			AttrPaymentMethod: o.PaymentMethod,
			AttrCreatedVia:    o.CreatedVia,
		},
	}
	if o.CustomerID != "0" {
		base.CustomerID = string(o.CustomerID)
	}
	base.SetRef(behavior.RefOrderID, oid)

	// lifecycle makes a record that exists once per order.
	lifecycle := func(kind behavior.Kind, at time.Time) behavior.Record {
		rec := clone(base)
		rec.ID = OrderRecordID(n.r.cfg.StoreID, kind, oid)
		rec.Kind = kind
		rec.At = at
		return rec
	}
	// perChange makes a record that is new with every modification.
	perChange := func(kind behavior.Kind) behavior.Record {
		rec := clone(base)
		rec.ID = behavior.DeriveID(Name, n.r.cfg.StoreID, string(kind), "order:"+oid, n.version(o.DateModifiedGMT))
		rec.Kind = kind
		rec.At = modified
		if n.r.cfg.StoreURL != "" && o.OrderKey != "" && (status == "pending" || status == "failed") {
			rec.SetRef(behavior.RefRecoveryURL, n.r.cfg.StoreURL+"/checkout/order-pay/"+url.PathEscape(oid)+
				"/?pay_for_order=true&key="+url.QueryEscape(o.OrderKey))
		}
		return rec
	}
	placed := func() behavior.Record {
		return lifecycle(behavior.OrderPlaced, firstTime(o.DateCreatedGMT, o.DateModifiedGMT))
	}
	paid := func(recs []behavior.Record) []behavior.Record {
		if t := parseTime(o.DatePaidGMT); !t.IsZero() {
			recs = append(recs, lifecycle(behavior.OrderPaid, t))
		}
		return recs
	}

	// Each refund the order lists is one order_refunded record, whatever
	// the status: a partial refund leaves an order processing or
	// completed, and only the refunds list says it happened.
	var refunds []behavior.Record
	for _, rf := range o.Refunds {
		v, err := n.money(rf.Total, cur, "refunds.total")
		if err != nil {
			return nil, err
		}
		if v < 0 { // WooCommerce lists refunds as negative amounts
			v = -v
		}
		if v == 0 || string(rf.ID) == "" {
			continue
		}
		rec := clone(base)
		rec.ID = behavior.DeriveID(Name, n.r.cfg.StoreID, string(behavior.OrderRefunded), "order:"+oid, "refund:"+string(rf.ID))
		rec.Kind = behavior.OrderRefunded
		rec.At = modified
		rec.Value = v
		rec.SetRef(RefRefundID, string(rf.ID))
		refunds = append(refunds, rec)
	}

	switch status {
	case "checkout-draft", "pending":
		return []behavior.Record{perChange(behavior.CheckoutStarted)}, nil
	case "failed":
		return []behavior.Record{perChange(behavior.PaymentFailed)}, nil
	case "on-hold":
		return append([]behavior.Record{placed()}, refunds...), nil
	case "processing":
		return append(paid([]behavior.Record{placed()}), refunds...), nil
	case "completed":
		recs := paid([]behavior.Record{placed()})
		recs = append(recs, lifecycle(behavior.OrderFulfilled, firstTime(o.DateCompleted, o.DateModifiedGMT, o.DateCreatedGMT)))
		return append(recs, refunds...), nil
	case "cancelled":
		return append([]behavior.Record{lifecycle(behavior.OrderCancelled, modified)}, refunds...), nil
	case "refunded":
		if len(refunds) > 0 {
			return refunds, nil
		}
		// Refunded without a refunds list: the whole order, once.
		return []behavior.Record{lifecycle(behavior.OrderRefunded, modified)}, nil
	}
	return nil, fmt.Errorf("woocommerce: %s: order status %q: %w", n.topic, status, connectors.ErrIgnored)
}

func (n normalizer) items(lis []lineItem, cur string) ([]behavior.Item, error) {
	if len(lis) == 0 {
		return nil, nil
	}
	out := make([]behavior.Item, 0, len(lis))
	for _, li := range lis {
		if li.Quantity.N < 0 || li.Quantity.N > 1<<31-1 {
			return nil, fmt.Errorf("woocommerce: %s: line item quantity %d: %w", n.topic, li.Quantity.N, connectors.ErrMalformed)
		}
		qty := li.Quantity.N
		// price is a JSON number in major units; its literal text is
		// parsed exactly. PHP may print it in exponent form or omit it,
		// so the line total divided by the quantity is the fallback.
		price, err := behavior.ParseMoney(string(li.Price), cur)
		if err != nil || li.Price == "" {
			total, terr := n.money(li.Total, cur, "line_items.total")
			if terr != nil {
				return nil, terr
			}
			price = total
			if qty > 0 {
				price = total / qty
			}
		}
		it := behavior.Item{
			ProductID: string(li.ProductID),
			SKU:       li.SKU,
			Title:     html.UnescapeString(li.Name),
			Price:     price,
			Quantity:  int(qty),
		}
		if li.VariationID != "0" {
			it.VariantID = string(li.VariationID)
		}
		if li.Image != nil {
			it.ImageURL = li.Image.Src
		}
		out = append(out, it)
	}
	return out, nil
}

func (n normalizer) customer() ([]behavior.Record, error) {
	var c customer
	if err := n.decode(&c); err != nil {
		return nil, err
	}
	rec := behavior.Record{
		ID:      behavior.DeriveID(Name, n.r.cfg.StoreID, string(behavior.CustomerUpdated), "customer:"+string(c.ID), n.version(c.DateModifiedGMT)),
		Kind:    behavior.CustomerUpdated,
		At:      firstTime(c.DateModifiedGMT, c.DateCreatedGMT),
		Email:   firstNonEmpty(c.Email, c.Billing.Email),
		Consent: metaConsent(c.MetaData, "woocommerce_account"),
		Person:  person(firstNonEmpty(c.FirstName, c.Billing.FirstName), firstNonEmpty(c.LastName, c.Billing.LastName), c.Billing.Phone, c.Billing.Country, c.Billing.State),
		Attrs:   map[string]any{},
	}
	if c.ID != "0" {
		rec.CustomerID = string(c.ID)
	}
	if c.Role != "" {
		rec.Attrs["role"] = c.Role
	}
	if c.IsPaying != nil {
		rec.Attrs["is_paying_customer"] = *c.IsPaying
	}
	return []behavior.Record{rec}, nil
}

func (n normalizer) product() ([]behavior.Record, error) {
	var p product
	if err := n.decode(&p); err != nil {
		return nil, err
	}
	if p.ID == "" || p.ID == "0" {
		return nil, fmt.Errorf("woocommerce: %s: product has no id: %w", n.topic, connectors.ErrMalformed)
	}
	cur := n.currency("")
	price, err := n.money(p.Price, cur, "price")
	if err != nil {
		return nil, err
	}
	it := behavior.Item{
		ProductID: string(p.ID),
		SKU:       p.SKU,
		Title:     html.UnescapeString(p.Name),
		URL:       p.Permalink,
		Price:     price,
		Available: p.StockQuantity.Ptr(),
	}
	if p.ParentID != "" && p.ParentID != "0" {
		it.ProductID, it.VariantID = string(p.ParentID), string(p.ID)
	}
	if len(p.Images) > 0 {
		it.ImageURL = p.Images[0].Src
	} else if p.Image != nil {
		it.ImageURL = p.Image.Src
	}
	if len(p.Categories) > 0 {
		it.Category = html.UnescapeString(p.Categories[0].Name)
	}
	// Without managed stock there is no count, only a status: out of stock
	// is zero available, anything else is unknown (nil counts as in stock).
	if it.Available == nil && p.StockStatus == "outofstock" {
		zero := int64(0)
		it.Available = &zero
	}
	rec := behavior.Record{
		ID:       behavior.DeriveID(Name, n.r.cfg.StoreID, string(behavior.ProductUpdated), "product:"+string(p.ID), n.version(p.DateModifiedGMT)),
		Kind:     behavior.ProductUpdated,
		At:       firstTime(p.DateModifiedGMT, p.DateCreatedGMT),
		Currency: cur,
		Items:    []behavior.Item{it},
		Attrs:    map[string]any{AttrProductStatus: p.Status, AttrStockStatus: p.StockStatus},
	}
	return []behavior.Record{rec}, nil
}

// metaConsent reads the first consent key of ConsentMetaKeys present with
// a truthy value.
func metaConsent(md []meta, from string) *behavior.Consent {
	keys := ConsentMetaKeys()
	for _, k := range keys {
		for _, m := range md {
			if m.Key == k && truthy(m.Value) {
				return &behavior.Consent{State: behavior.ConsentGranted, CollectedFrom: from + ":" + k}
			}
		}
	}
	return nil
}

func truthy(raw json.RawMessage) bool {
	s, err := scalar(raw)
	if err != nil {
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return false
		}
		return b
	}
	switch strings.ToLower(s) {
	case "1", "yes", "on", "true", "subscribed", "granted":
		return true
	}
	return false
}

func person(first, last, phone, country, state string) *behavior.Person {
	p := behavior.Person{
		FirstName: strings.TrimSpace(first),
		LastName:  strings.TrimSpace(last),
		Phone:     strings.TrimSpace(phone),
		Country:   strings.ToUpper(strings.TrimSpace(country)),
	}
	if p.Country != "" {
		p.Region = strings.ToUpper(strings.TrimSpace(state))
	}
	if p == (behavior.Person{}) {
		return nil
	}
	return &p
}

// clone copies a record deeply enough that records made from one base
// do not share maps.
func clone(r behavior.Record) behavior.Record {
	c := r
	c.Refs = make(map[string]string, len(r.Refs))
	for k, v := range r.Refs {
		c.Refs[k] = v
	}
	c.Attrs = make(map[string]any, len(r.Attrs))
	for k, v := range r.Attrs {
		c.Attrs[k] = v
	}
	c.Items = append([]behavior.Item(nil), r.Items...)
	return c
}
