package shopify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
)

// Attribute keys this connector sets besides behavior.AttrTopic.
const (
	AttrOrderName         = "order_name"
	AttrFinancialStatus   = "financial_status"
	AttrFulfillmentStatus = "fulfillment_status"
	AttrCancelReason      = "cancel_reason"
	AttrTest              = "test"
	AttrProductStatus     = "product_status"
	AttrHandle            = "handle"
	// AttrInventoryItems maps variant id → inventory item id on
	// product_updated records from products/update. inventory_levels/update
	// names only an inventory item, so whoever keeps the catalog resolves
	// it to a variant and product through this map.
	AttrInventoryItems = "inventory_items"
	// AttrInventoryItemID and AttrLocationID are set on product_updated
	// records from inventory_levels/update.
	AttrInventoryItemID = "inventory_item_id"
	AttrLocationID      = "location_id"
)

// CartAnonymousID is the anonymous id given to records that carry a cart
// token: carts have no email, so the token is their identity, and a later
// checkout with the same cart_token merges the two profiles.
func CartAnonymousID(cartToken string) string { return "shopify-cart:" + cartToken }

// OrderAnonymousID is the anonymous id given to order and refund records.
// Refund payloads carry no customer at all, only the order id, so this is
// what ties a refund to the buyer's profile.
func OrderAnonymousID(orderID string) string { return "shopify-order:" + orderID }

// OrderRecordID is the id of an order lifecycle record (order_placed,
// order_paid, order_fulfilled, order_cancelled) of a store's order. It
// depends on the order id alone, not on the delivery: an order is placed,
// paid or cancelled once, however many deliveries, subscriptions or
// imports report it, so all of them dedupe to one record.
func OrderRecordID(storeID string, kind behavior.Kind, orderID string) string {
	return behavior.DeriveID(Name, storeID, string(kind), "order:"+orderID)
}

// Normalize turns one verified delivery into records.
//
//   - checkouts/create, checkouts/update → checkout_started. A checkout
//     whose completed_at is set has become an order: it returns
//     ErrIgnored, because a checkout_started arriving after the order
//     would start an abandonment journey for a customer who bought.
//   - carts/create, carts/update → cart_updated, identified by
//     CartAnonymousID (carts carry no email).
//   - orders/create → order_placed; orders/paid → order_paid;
//     orders/fulfilled → order_fulfilled; orders/cancelled →
//     order_cancelled; refunds/create → order_refunded.
//   - customers/create, customers/update → customer_updated.
//   - customers_email_marketing_consent/update (alias
//     customers/email_marketing_consent_update) → consent_changed.
//   - products/update → product_updated, one item per variant;
//     inventory_levels/update → product_updated with one item carrying
//     only Available, and the inventory item in attrs (see
//     AttrInventoryItems).
//
// ErrIgnored: checkouts/delete, orders/updated (its changes arrive through
// the specific order topics), customers/marketing_consent/update (SMS),
// the mandatory compliance topics customers/data_request,
// customers/redact and shop/redact (erasure is `nudge forget`, run by the
// merchant; automating it from shop/redact is future work), any other
// topic, and deliveries that name no person. A body that is not the
// topic's JSON object wraps ErrMalformed.
//
// Record ids: order lifecycle records use OrderRecordID, refunds the
// refund id; all others derive from the store, topic and
// X-Shopify-Event-Id (the same across duplicate deliveries), falling back
// to X-Shopify-Webhook-Id, then to the resource id and updated_at.
func (r *Receiver) Normalize(h http.Header, body []byte) ([]behavior.Record, error) {
	topic := r.Topic(h)
	n := normalizer{r: r, h: h, topic: topic}
	var recs []behavior.Record
	var err error
	switch topic {
	case "checkouts/create", "checkouts/update":
		recs, err = n.checkout(body)
	case "carts/create", "carts/update":
		recs, err = n.cart(body)
	case "orders/create":
		recs, err = n.order(body, behavior.OrderPlaced)
	case "orders/paid":
		recs, err = n.order(body, behavior.OrderPaid)
	case "orders/fulfilled":
		recs, err = n.order(body, behavior.OrderFulfilled)
	case "orders/cancelled":
		recs, err = n.order(body, behavior.OrderCancelled)
	case "refunds/create":
		recs, err = n.refund(body)
	case "customers/create", "customers/update":
		recs, err = n.customer(body)
	case "customers_email_marketing_consent/update", "customers/email_marketing_consent_update":
		recs, err = n.consent(body)
	case "products/create", "products/update":
		recs, err = n.product(body)
	case "inventory_levels/update":
		recs, err = n.inventory(body)
	case "":
		return nil, fmt.Errorf("shopify: no %s header: %w", HeaderTopic, connectors.ErrIgnored)
	default:
		return nil, fmt.Errorf("shopify: topic %q: %w", topic, connectors.ErrIgnored)
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
}

// decode reads body into v, requiring a JSON object.
func (n normalizer) decode(body []byte, v any) error {
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("shopify: %s: body is not a JSON object: %w", n.topic, connectors.ErrMalformed)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("shopify: %s: %v: %w", n.topic, err, connectors.ErrMalformed)
	}
	return nil
}

// deliveryKey identifies the event behind a delivery (see Normalize).
func (n normalizer) deliveryKey(resourceID id, updatedAt string) string {
	if v := strings.TrimSpace(header(n.h, HeaderEventID)); v != "" {
		return "event:" + v
	}
	if v := strings.TrimSpace(header(n.h, HeaderWebhookID)); v != "" {
		return "webhook:" + v
	}
	return "resource:" + string(resourceID) + "@" + updatedAt
}

func (n normalizer) recordID(parts ...string) string {
	return behavior.DeriveID(append([]string{Name, n.r.cfg.StoreID, n.topic}, parts...)...)
}

// at returns the first parseable resource time, else the delivery's
// X-Shopify-Triggered-At.
func (n normalizer) at(times ...string) time.Time {
	return firstTime(append(times, header(n.h, HeaderTriggeredAt))...)
}

func (n normalizer) currency(c string) string {
	return strings.ToUpper(firstNonEmpty(c, n.r.cfg.Currency))
}

// finish stamps what every record shares and drops person records that
// name nobody, which the store could not attach to any profile.
func (n normalizer) finish(recs []behavior.Record) ([]behavior.Record, error) {
	out := recs[:0]
	for _, rec := range recs {
		if rec.At.IsZero() {
			return nil, fmt.Errorf("shopify: %s: no timestamp in body or %s: %w", n.topic, HeaderTriggeredAt, connectors.ErrMalformed)
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
		return nil, fmt.Errorf("shopify: %s: delivery names no customer: %w", n.topic, connectors.ErrIgnored)
	}
	return out, nil
}

func (n normalizer) checkout(body []byte) ([]behavior.Record, error) {
	var c checkout
	if err := n.decode(body, &c); err != nil {
		return nil, err
	}
	if c.CompletedAt != nil && strings.TrimSpace(*c.CompletedAt) != "" {
		return nil, fmt.Errorf("shopify: %s: checkout completed; the order webhook carries it: %w", n.topic, connectors.ErrIgnored)
	}
	cur := n.currency(c.Currency)
	items, err := n.items(c.LineItems, cur)
	if err != nil {
		return nil, err
	}
	rec := behavior.Record{
		ID:       n.recordID(n.deliveryKey(c.ID, c.UpdatedAt)),
		Kind:     behavior.CheckoutStarted,
		At:       n.at(c.UpdatedAt, c.CreatedAt),
		Email:    c.Email,
		Currency: cur,
		Items:    items,
		Consent:  checkoutConsent(c.BuyerAcceptsMarketing, c.Customer),
		Person:   person(c.Customer, c.CustomerLocale, c.Phone, c.BillingAddress, c.ShippingAddress),
	}
	if rec.Value, err = n.money(c.TotalPrice, cur, "total_price"); err != nil {
		return nil, err
	}
	if rec.Value == 0 {
		rec.Value = behavior.ItemValue(items)
	}
	if c.Customer != nil {
		rec.Email = firstNonEmpty(rec.Email, c.Customer.Email)
		rec.CustomerID = string(c.Customer.ID)
	}
	if c.CartToken != "" {
		rec.AnonymousID = CartAnonymousID(c.CartToken)
	}
	rec.SetRef(behavior.RefCartToken, c.CartToken)
	rec.SetRef(behavior.RefCheckoutToken, c.Token)
	rec.SetRef(behavior.RefRecoveryURL, c.AbandonedCheckoutURL)
	return []behavior.Record{rec}, nil
}

func (n normalizer) cart(body []byte) ([]behavior.Record, error) {
	var c cart
	if err := n.decode(body, &c); err != nil {
		return nil, err
	}
	token := firstNonEmpty(c.Token, string(c.ID))
	cur := n.currency("")
	items, err := n.items(c.LineItems, cur)
	if err != nil {
		return nil, err
	}
	rec := behavior.Record{
		ID:       n.recordID(n.deliveryKey(id(token), c.UpdatedAt)),
		Kind:     behavior.CartUpdated,
		At:       n.at(c.UpdatedAt, c.CreatedAt),
		Currency: cur,
		Items:    items,
		Value:    behavior.ItemValue(items),
	}
	if token != "" {
		rec.AnonymousID = CartAnonymousID(token)
	}
	rec.SetRef(behavior.RefCartToken, token)
	return []behavior.Record{rec}, nil
}

func (n normalizer) order(body []byte, kind behavior.Kind) ([]behavior.Record, error) {
	var o order
	if err := n.decode(body, &o); err != nil {
		return nil, err
	}
	if o.ID == "" {
		return nil, fmt.Errorf("shopify: %s: order has no id: %w", n.topic, connectors.ErrMalformed)
	}
	cur := n.currency(o.Currency)
	items, err := n.items(o.LineItems, cur)
	if err != nil {
		return nil, err
	}
	rec := behavior.Record{
		ID:          OrderRecordID(n.r.cfg.StoreID, kind, string(o.ID)),
		Kind:        kind,
		Email:       firstNonEmpty(o.Email, o.ContactEmail),
		AnonymousID: OrderAnonymousID(string(o.ID)),
		Currency:    cur,
		Items:       items,
		Consent:     checkoutConsent(o.BuyerAcceptsMarketing, o.Customer),
		Person:      person(o.Customer, o.CustomerLocale, o.Phone, o.BillingAddress, o.ShippingAddress),
		Attrs: map[string]any{
			AttrOrderName:         o.Name,
			AttrFinancialStatus:   o.FinancialStatus,
			AttrFulfillmentStatus: o.FulfillmentStatus,
		},
	}
	switch kind {
	case behavior.OrderPlaced:
		rec.At = n.at(o.ProcessedAt, o.CreatedAt)
	case behavior.OrderCancelled:
		rec.At = n.at(o.CancelledAt, o.UpdatedAt)
		rec.Attrs[AttrCancelReason] = o.CancelReason
	default:
		rec.At = n.at(o.UpdatedAt, o.ProcessedAt, o.CreatedAt)
	}
	if o.Test {
		rec.Attrs[AttrTest] = true
	}
	if rec.Value, err = n.money(o.TotalPrice, cur, "total_price"); err != nil {
		return nil, err
	}
	if o.Customer != nil {
		rec.Email = firstNonEmpty(rec.Email, o.Customer.Email)
		rec.CustomerID = string(o.Customer.ID)
	}
	rec.SetRef(behavior.RefOrderID, string(o.ID))
	rec.SetRef(behavior.RefCheckoutToken, o.CheckoutToken)
	rec.SetRef(behavior.RefCartToken, o.CartToken)
	return []behavior.Record{rec}, nil
}

func (n normalizer) refund(body []byte) ([]behavior.Record, error) {
	var f refund
	if err := n.decode(body, &f); err != nil {
		return nil, err
	}
	if f.OrderID == "" {
		return nil, fmt.Errorf("shopify: %s: refund names no order: %w", n.topic, connectors.ErrMalformed)
	}
	cur := ""
	for _, tx := range f.Transactions {
		cur = firstNonEmpty(cur, tx.Currency)
	}
	for _, li := range f.RefundLineItems {
		if li.SubtotalSet != nil {
			cur = firstNonEmpty(cur, li.SubtotalSet.ShopMoney.CurrencyCode)
		}
	}
	cur = n.currency(cur)
	// The money that went back is what the successful refund transactions
	// moved; refunds without transactions (restock only, store credit)
	// fall back to the refunded lines' subtotal.
	var value int64
	for _, tx := range f.Transactions {
		if tx.Kind != "refund" || (tx.Status != "success" && tx.Status != "") {
			continue
		}
		v, err := n.money(tx.Amount, cur, "transactions.amount")
		if err != nil {
			return nil, err
		}
		value += v
	}
	var items []behavior.Item
	var lineTotal int64
	for _, li := range f.RefundLineItems {
		v, err := n.money(li.Subtotal, cur, "refund_line_items.subtotal")
		if err != nil {
			return nil, err
		}
		lineTotal += v
		if li.LineItem != nil {
			it, err := n.item(*li.LineItem, cur)
			if err != nil {
				return nil, err
			}
			if li.Quantity.Set {
				it.Quantity = int(li.Quantity.N)
			}
			items = append(items, it)
		}
	}
	if value == 0 {
		value = lineTotal
	}
	key := "refund:" + string(f.ID)
	if f.ID == "" {
		key = n.deliveryKey(f.OrderID, f.CreatedAt)
	}
	rec := behavior.Record{
		ID:          behavior.DeriveID(Name, n.r.cfg.StoreID, string(behavior.OrderRefunded), key),
		Kind:        behavior.OrderRefunded,
		At:          n.at(f.ProcessedAt, f.CreatedAt),
		AnonymousID: OrderAnonymousID(string(f.OrderID)),
		Value:       value,
		Currency:    cur,
		Items:       items,
	}
	rec.SetRef(behavior.RefOrderID, string(f.OrderID))
	if f.Note != "" {
		rec.Attrs = map[string]any{"note": f.Note}
	}
	return []behavior.Record{rec}, nil
}

func (n normalizer) customer(body []byte) ([]behavior.Record, error) {
	var c customer
	if err := n.decode(body, &c); err != nil {
		return nil, err
	}
	rec := behavior.Record{
		ID:         n.recordID(n.deliveryKey(c.ID, c.UpdatedAt)),
		Kind:       behavior.CustomerUpdated,
		At:         n.at(c.UpdatedAt, c.CreatedAt),
		Email:      c.Email,
		CustomerID: string(c.ID),
		Person:     person(&c, "", "", nil, nil),
		Attrs:      map[string]any{},
	}
	// Payloads from API 2025-01 on no longer carry the consent; older
	// ones do, and it is the customer's stored consent.
	if mc := c.EmailMarketingConsent; mc != nil {
		rec.Consent = consentOf(mc, "shopify_customer")
	}
	if c.State != "" {
		rec.Attrs["state"] = c.State
	}
	if c.Tags != "" {
		rec.Attrs["tags"] = c.Tags
	}
	if c.VerifiedEmail != nil {
		rec.Attrs["verified_email"] = *c.VerifiedEmail
	}
	return []behavior.Record{rec}, nil
}

func (n normalizer) consent(body []byte) ([]behavior.Record, error) {
	var c consentUpdate
	if err := n.decode(body, &c); err != nil {
		return nil, err
	}
	if c.EmailMarketingConsent == nil {
		return nil, fmt.Errorf("shopify: %s: no email_marketing_consent: %w", n.topic, connectors.ErrMalformed)
	}
	mc := c.EmailMarketingConsent
	cons := consentOf(mc, "shopify")
	if cons == nil {
		return nil, fmt.Errorf("shopify: %s: unknown consent state %q: %w", n.topic, mc.State, connectors.ErrMalformed)
	}
	rec := behavior.Record{
		ID:         n.recordID(n.deliveryKey(c.CustomerID, mc.ConsentUpdatedAt)),
		Kind:       behavior.ConsentChanged,
		At:         n.at(mc.ConsentUpdatedAt),
		Email:      c.EmailAddress,
		CustomerID: string(c.CustomerID),
		Consent:    cons,
		Attrs:      map[string]any{"shopify_state": mc.State},
	}
	return []behavior.Record{rec}, nil
}

func (n normalizer) product(body []byte) ([]behavior.Record, error) {
	var p product
	if err := n.decode(body, &p); err != nil {
		return nil, err
	}
	if p.ID == "" {
		return nil, fmt.Errorf("shopify: %s: product has no id: %w", n.topic, connectors.ErrMalformed)
	}
	cur := n.currency("")
	url := ""
	if n.r.cfg.StoreURL != "" && p.Handle != "" {
		url = n.r.cfg.StoreURL + "/products/" + p.Handle
	}
	defaultImage := ""
	if p.Image != nil {
		defaultImage = p.Image.Src
	} else if len(p.Images) > 0 {
		defaultImage = p.Images[0].Src
	}
	inventory := map[string]any{}
	items := make([]behavior.Item, 0, len(p.Variants))
	for _, v := range p.Variants {
		price, err := n.money(v.Price, cur, "variants.price")
		if err != nil {
			return nil, err
		}
		it := behavior.Item{
			ProductID: string(p.ID),
			VariantID: string(v.ID),
			SKU:       v.SKU,
			Title:     p.Title,
			URL:       url,
			ImageURL:  variantImage(p.Images, v.ID, defaultImage),
			Price:     price,
			Category:  p.ProductType,
			Available: v.InventoryQuantity.Ptr(),
		}
		items = append(items, it)
		if v.InventoryItemID != "" && v.ID != "" {
			inventory[string(v.ID)] = string(v.InventoryItemID)
		}
	}
	if len(items) == 0 {
		items = append(items, behavior.Item{ProductID: string(p.ID), Title: p.Title, URL: url, ImageURL: defaultImage, Category: p.ProductType})
	}
	rec := behavior.Record{
		ID:       n.recordID(n.deliveryKey(p.ID, p.UpdatedAt)),
		Kind:     behavior.ProductUpdated,
		At:       n.at(p.UpdatedAt, p.CreatedAt),
		Currency: cur,
		Items:    items,
		Attrs:    map[string]any{AttrProductStatus: p.Status, AttrHandle: p.Handle},
	}
	if len(inventory) > 0 {
		rec.Attrs[AttrInventoryItems] = inventory
	}
	return []behavior.Record{rec}, nil
}

// inventory maps an inventory level. Its "available" is the stock at one
// location; shops with a single location (most small shops) have exactly
// the product's stock.
func (n normalizer) inventory(body []byte) ([]behavior.Record, error) {
	var l inventoryLevel
	if err := n.decode(body, &l); err != nil {
		return nil, err
	}
	if l.InventoryItemID == "" {
		return nil, fmt.Errorf("shopify: %s: no inventory_item_id: %w", n.topic, connectors.ErrMalformed)
	}
	rec := behavior.Record{
		ID:    n.recordID(n.deliveryKey(l.InventoryItemID+"@"+l.LocationID, l.UpdatedAt)),
		Kind:  behavior.ProductUpdated,
		At:    n.at(l.UpdatedAt),
		Items: []behavior.Item{{Available: l.Available.Ptr()}},
		Attrs: map[string]any{AttrInventoryItemID: string(l.InventoryItemID), AttrLocationID: string(l.LocationID)},
	}
	return []behavior.Record{rec}, nil
}

func (n normalizer) items(lis []lineItem, cur string) ([]behavior.Item, error) {
	if len(lis) == 0 {
		return nil, nil
	}
	out := make([]behavior.Item, 0, len(lis))
	for _, li := range lis {
		it, err := n.item(li, cur)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

func (n normalizer) item(li lineItem, cur string) (behavior.Item, error) {
	price, err := n.money(li.Price, cur, "line_items.price")
	if err != nil {
		return behavior.Item{}, err
	}
	if li.Quantity.N < 0 || li.Quantity.N > 1<<31-1 {
		return behavior.Item{}, fmt.Errorf("shopify: %s: line item quantity %d: %w", n.topic, li.Quantity.N, connectors.ErrMalformed)
	}
	title := li.Name
	if title == "" {
		title = li.Title
		if li.VariantTitle != "" && li.VariantTitle != "Default Title" {
			title += " - " + li.VariantTitle
		}
	}
	return behavior.Item{
		ProductID: string(li.ProductID),
		VariantID: string(li.VariantID),
		SKU:       li.SKU,
		Title:     title,
		Price:     price,
		Quantity:  int(li.Quantity.N),
	}, nil
}

func (n normalizer) money(a amount, cur, field string) (int64, error) {
	v, err := behavior.ParseMoney(string(a), cur)
	if err != nil {
		return 0, fmt.Errorf("shopify: %s: %s: %v: %w", n.topic, field, err, connectors.ErrMalformed)
	}
	return v, nil
}

func variantImage(images []image, variant id, fallback string) string {
	for _, im := range images {
		for _, v := range im.VariantIDs {
			if v == variant && im.Src != "" {
				return im.Src
			}
		}
	}
	return fallback
}

// checkoutConsent reads consent at checkout. A ticked marketing box is a
// grant; otherwise the customer's stored consent, when the payload still
// carries it, is what holds. An unticked box alone is not a withdrawal,
// so it yields no consent at all rather than "denied".
//
// A ticked box is dated by the stored consent's consent_updated_at when
// that says "subscribed": Shopify restates the box for customers already
// subscribed (and shops can pre-tick it), so the tick is the old decision
// repeated, and it must not undo an unsubscribe made since. A fresh tick
// moves consent_updated_at to the checkout. Without a stored date the
// grant stays undated, which updates the profile but lifts no unsubscribe
// (behavior.Consent.Reaffirms).
func checkoutConsent(accepts *bool, c *customer) *behavior.Consent {
	var stored *marketingConsent
	if c != nil {
		stored = c.EmailMarketingConsent
	}
	if accepts != nil && *accepts {
		cons := &behavior.Consent{State: behavior.ConsentGranted, CollectedFrom: "shopify_checkout"}
		if stored != nil && stored.OptInLevel != nil {
			cons.Level = *stored.OptInLevel
		}
		if stored != nil && strings.EqualFold(strings.TrimSpace(stored.State), "subscribed") {
			cons.At = parseTime(stored.ConsentUpdatedAt)
		}
		return cons
	}
	if stored != nil {
		return consentOf(stored, "shopify_checkout")
	}
	return nil
}

// consentOf maps Shopify's consent states, dated by consent_updated_at;
// nil for states it does not know. "redacted" and "invalid" addresses must not be mailed, so they
// count as denied.
func consentOf(mc *marketingConsent, from string) *behavior.Consent {
	var state string
	switch strings.ToLower(strings.TrimSpace(mc.State)) {
	case "subscribed":
		state = behavior.ConsentGranted
	case "unsubscribed", "not_subscribed", "redacted", "invalid":
		state = behavior.ConsentDenied
	case "pending":
		state = behavior.ConsentPending
	default:
		return nil
	}
	// Dated by Shopify's consent_updated_at (zero when absent or
	// unparseable), not by the payload carrying it.
	cons := &behavior.Consent{State: state, CollectedFrom: from, At: parseTime(mc.ConsentUpdatedAt)}
	if mc.OptInLevel != nil {
		cons.Level = *mc.OptInLevel
	}
	if mc.CollectedFrom != "" && from == "shopify" {
		cons.CollectedFrom = "shopify:" + strings.ToLower(mc.CollectedFrom)
	}
	return cons
}

// person gathers the profile facts scattered over a customer and the
// addresses of a checkout or order; nil when there are none.
func person(c *customer, locale, phone string, addrs ...*address) *behavior.Person {
	p := behavior.Person{Locale: locale, Phone: phone}
	if c != nil {
		p.FirstName, p.LastName = c.FirstName, c.LastName
		p.Phone = firstNonEmpty(c.Phone, p.Phone)
		addrs = append(addrs, c.DefaultAddress)
		for i := range c.Addresses {
			addrs = append(addrs, &c.Addresses[i])
		}
	}
	for _, a := range addrs {
		if a == nil {
			continue
		}
		if p.FirstName == "" && p.LastName == "" {
			p.FirstName, p.LastName = a.FirstName, a.LastName
		}
		p.Phone = firstNonEmpty(p.Phone, a.Phone)
		if p.Country == "" && a.CountryCode != "" {
			// Country and region from one address, so they agree.
			p.Country, p.Region = strings.ToUpper(a.CountryCode), strings.ToUpper(a.ProvinceCode)
		}
	}
	if p == (behavior.Person{}) {
		return nil
	}
	return &p
}
