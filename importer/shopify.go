package importer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/shopify"
)

// Shopify's order export (Admin > Orders > Export, "CSV for Excel,
// Numbers, or other spreadsheet programs") has one row per line item.
// Order-level cells (Email, Financial Status, Total, …) are filled on the
// order's first row and may be blank on the rest; rows of one order are
// adjacent and share its Name.
//
// Columns read (matched case-insensitively; any others are ignored):
//
//	Name                     order name, e.g. #1001 (required; groups rows)
//	Id                       numeric order id; gives the records the ids the
//	                         live webhooks use, so the two dedupe
//	Email                    the customer's address
//	Created at               "2024-01-05 10:11:12 -0500" → order_placed (required)
//	Financial Status         paid, partially_refunded, refunded → also order_paid
//	                         (at Paid at); refunded, partially_refunded →
//	                         also order_refunded (value Refunded Amount)
//	Paid at, Fulfilled at, Cancelled at
//	Fulfillment Status       fulfilled (with Fulfilled at) → also order_fulfilled
//	Cancelled at             set → also order_cancelled
//	Accepts Marketing        yes → consent granted; no says nothing (an unticked
//	                         box is not a withdrawal, as for live orders)
//	Currency                 else Options.Currency
//	Total                    the record value (required)
//	Refunded Amount
//	Lineitem quantity, Lineitem name, Lineitem price, Lineitem sku
//	                         one item per row (name and price required)
//	Billing Name, Billing Phone, Phone, Billing Country
//	                         the person's name, phone and country
//
// The export has no product ids, so items carry title, SKU and price but
// no product_id.
var shopifyOrderColumns = []string{
	"id", "email", "financial_status", "paid_at", "fulfillment_status", "fulfilled_at",
	"accepts_marketing", "currency", "total", "created_at", "cancelled_at", "refunded_amount",
	"billing_name", "billing_phone", "phone", "billing_country",
}

type shopifyOrder struct {
	name   string
	line   int // the first row's line
	rows   int
	fields map[string]string
	items  []behavior.Item
	// errLine and err are the first problem found in a row of the order;
	// the whole order is rejected, at that row.
	errLine int
	err     error
}

func readShopify(r *bufio.Reader, b *batcher) error {
	if b.opts.StoreID == "" {
		return fmt.Errorf("import: %s: %s needs the store id (--store) to give orders the ids live webhooks use", b.file, FormatShopify)
	}
	t, err := newTable(r, b.file)
	if err != nil {
		return err
	}
	if err := t.require(FormatShopify, "name", "email", "created_at", "total", "lineitem_quantity", "lineitem_name", "lineitem_price"); err != nil {
		return err
	}
	done := map[string]bool{}
	var cur *shopifyOrder
	finish := func() error {
		if cur == nil {
			return nil
		}
		o := cur
		cur = nil
		done[o.name] = true
		if o.err != nil {
			b.reject(o.errLine, o.rows, "order %s: %v", o.name, o.err)
			return nil
		}
		recs, err := shopifyRecords(o, b.opts)
		if err != nil {
			b.reject(o.line, o.rows, "order %s: %v", o.name, err)
			return nil
		}
		return b.add(o.line, o.rows, "order "+o.name, recs...)
	}
	for {
		line, err := t.next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re rowError
		if errors.As(err, &re) {
			b.row()
			b.reject(line, 1, "%v", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("import: %s: %w", b.file, err)
		}
		b.row()
		name := t.get("name")
		switch {
		case name == "":
			b.reject(line, 1, "no Name: every row must name its order")
			continue
		case cur != nil && name == cur.name:
		case done[name]:
			b.reject(line, 1, "order %s continues here after other orders; keep an order's rows together, as Shopify exports them", name)
			continue
		default:
			if err := finish(); err != nil {
				return err
			}
			cur = &shopifyOrder{name: name, line: line, fields: map[string]string{}}
		}
		cur.rows++
		for _, c := range shopifyOrderColumns {
			if v := t.get(c); v != "" && cur.fields[c] == "" {
				cur.fields[c] = v
			}
		}
		if cur.err != nil {
			continue
		}
		it, err := shopifyItem(t, cur.fields["currency"], b.opts.Currency)
		if err != nil {
			cur.err, cur.errLine = err, line
			continue
		}
		if it != nil {
			cur.items = append(cur.items, *it)
		}
	}
	return finish()
}

// shopifyItem reads the line item of the current row; nil when the row
// has none.
func shopifyItem(t *table, orderCurrency, fallback string) (*behavior.Item, error) {
	name, qty, price, sku := t.get("lineitem_name"), t.get("lineitem_quantity"), t.get("lineitem_price"), t.get("lineitem_sku")
	if name == "" && qty == "" && price == "" && sku == "" {
		return nil, nil
	}
	it := behavior.Item{Title: name, SKU: sku, Quantity: 1}
	if qty != "" {
		n, err := strconv.Atoi(qty)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("column Lineitem quantity: %q is not a count", qty)
		}
		it.Quantity = n
	}
	cur := firstNonEmpty(orderCurrency, fallback)
	p, err := behavior.ParseMoney(price, cur)
	if err != nil {
		return nil, fmt.Errorf("column Lineitem price: %q is not an amount", price)
	}
	it.Price = p
	return &it, nil
}

// shopifyRecords turns a complete order into its lifecycle records.
func shopifyRecords(o *shopifyOrder, opts Options) ([]behavior.Record, error) {
	f := o.fields
	currency := strings.ToUpper(firstNonEmpty(f["currency"], opts.Currency))
	if currency == "" {
		return nil, fmt.Errorf("no currency: the row has no Currency and none was given (--currency)")
	}
	at := func(col string) (time.Time, error) {
		if f[col] == "" {
			return time.Time{}, nil
		}
		t, err := parseTime(f[col], opts.Location)
		if err != nil {
			return time.Time{}, fmt.Errorf("column %s: %v", shopifyColumnTitle(col), err)
		}
		return t, nil
	}
	created, err := at("created_at")
	if err != nil {
		return nil, err
	}
	if created.IsZero() {
		return nil, fmt.Errorf("no Created at")
	}
	paidAt, err := at("paid_at")
	if err != nil {
		return nil, err
	}
	fulfilledAt, err := at("fulfilled_at")
	if err != nil {
		return nil, err
	}
	cancelledAt, err := at("cancelled_at")
	if err != nil {
		return nil, err
	}
	total, err := behavior.ParseMoney(f["total"], currency)
	if err != nil {
		return nil, fmt.Errorf("column Total: %q is not an amount", f["total"])
	}
	refunded, err := behavior.ParseMoney(f["refunded_amount"], currency)
	if err != nil {
		return nil, fmt.Errorf("column Refunded Amount: %q is not an amount", f["refunded_amount"])
	}
	id := f["id"]
	financial := strings.ToLower(f["financial_status"])
	fulfillment := strings.ToLower(f["fulfillment_status"])
	base := behavior.Record{
		Source:   shopify.Name,
		Store:    opts.StoreID,
		Email:    f["email"],
		Currency: currency,
		Items:    o.items,
		Value:    total,
		Person:   shopifyPerson(f),
		Attrs: map[string]any{
			behavior.AttrTopic:            Topic,
			shopify.AttrOrderName:         o.name,
			shopify.AttrFinancialStatus:   financial,
			shopify.AttrFulfillmentStatus: fulfillment,
		},
	}
	if id != "" {
		base.AnonymousID = shopify.OrderAnonymousID(id)
		base.SetRef(behavior.RefOrderID, id)
	} else if base.Email == "" {
		return nil, fmt.Errorf("neither Email nor Id: nothing identifies the customer")
	}
	if strings.EqualFold(f["accepts_marketing"], "yes") || strings.EqualFold(f["accepts_marketing"], "true") {
		base.Consent = &behavior.Consent{State: behavior.ConsentGranted, CollectedFrom: "shopify_export"}
	}
	lifecycle := func(kind behavior.Kind, when time.Time) behavior.Record {
		r := base
		r.Kind, r.At = kind, when
		r.Attrs = make(map[string]any, len(base.Attrs))
		for k, v := range base.Attrs {
			r.Attrs[k] = v
		}
		if id != "" {
			r.ID = shopify.OrderRecordID(opts.StoreID, kind, id)
		} else {
			// Without the order id the name is the only stable key; such
			// records cannot dedupe with live webhooks.
			r.ID = behavior.DeriveID(shopify.Name, opts.StoreID, string(kind), "order-name:"+o.name)
		}
		return r
	}
	recs := []behavior.Record{lifecycle(behavior.OrderPlaced, created)}
	switch financial {
	case "paid", "partially_refunded", "refunded":
		recs = append(recs, lifecycle(behavior.OrderPaid, firstTime(paidAt, created)))
	}
	if fulfillment == "fulfilled" && !fulfilledAt.IsZero() {
		recs = append(recs, lifecycle(behavior.OrderFulfilled, fulfilledAt))
	}
	if !cancelledAt.IsZero() {
		recs = append(recs, lifecycle(behavior.OrderCancelled, cancelledAt))
	}
	if financial == "refunded" || financial == "partially_refunded" {
		// The export has no refund date: the latest known moment of the
		// order stands in for it.
		r := lifecycle(behavior.OrderRefunded, latest(created, paidAt, fulfilledAt, cancelledAt))
		switch {
		case refunded > 0:
			r.Value = refunded
		case financial == "partially_refunded":
			r.Value = 0
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func shopifyPerson(f map[string]string) *behavior.Person {
	p := behavior.Person{Phone: firstNonEmpty(f["phone"], f["billing_phone"]), Country: strings.ToUpper(f["billing_country"])}
	if n := f["billing_name"]; n != "" {
		p.FirstName, p.LastName, _ = strings.Cut(n, " ")
		p.LastName = strings.TrimSpace(p.LastName)
	}
	if p == (behavior.Person{}) {
		return nil
	}
	return &p
}

// shopifyColumnTitle spells a column as Shopify's header does.
func shopifyColumnTitle(col string) string {
	s := strings.ReplaceAll(col, "_", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}
