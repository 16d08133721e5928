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
	"github.com/nudge-email/nudge/connectors/woocommerce"
)

// WooCommerce core has no order CSV with email addresses (Analytics'
// download names customers, not addresses), so the format read is that of
// the official "Customer / Order / Coupon Export" extension (SkyVerge),
// in either of its CSV layouts:
//
//   - "Default": one row per order, line items packed into line_items as
//     "name:Mug|sku:M1|quantity:2|total:18.00|…" joined by ";";
//   - "Default – One Row per Item": one row per line item, with item_name,
//     item_sku, item_quantity, item_total; rows of one order are adjacent
//     and share order_id.
//
// Columns read (matched case-insensitively, "Billing Email" = billing_email):
//
//	order_id (or order_number)   the order; order_id is the id the live
//	                             webhooks use, so the two dedupe (required)
//	date (or order_date)         "2024-01-05 10:11:12", in Options.Location (required)
//	status                       as the live connector maps it:
//	                             on-hold → order_placed; processing → also
//	                             order_paid; completed → also order_paid and
//	                             order_fulfilled; cancelled → order_placed and
//	                             order_cancelled; refunded → order_placed,
//	                             order_paid and order_refunded; pending,
//	                             checkout-draft and failed are skipped
//	                             (history must not start abandonment or
//	                             dunning journeys) (required)
//	order_total                  the record value (required)
//	refunded_total               the refund's value
//	order_currency (or currency) else Options.Currency
//	billing_email                the customer's address (required column)
//	customer_id                  the store's customer id (0 = guest)
//	billing_first_name, billing_last_name, billing_phone, billing_country
//	date_paid, date_completed    when present, the paid and fulfilled times
//	line_items or item_name, item_sku, item_quantity, item_total
//	                             (item_product_id, item_variation_id when present)
//
// Item prices are line totals divided by quantity, as the live connector
// falls back to.
type wooOrder struct {
	id      string
	line    int
	rows    int
	fields  map[string]string
	items   []behavior.Item
	errLine int
	err     error
}

// wooColumns maps each value read to the header names that carry it, in
// order of preference.
var wooColumns = map[string][]string{
	"order_id":       {"order_id"},
	"order_number":   {"order_number"},
	"date":           {"date", "order_date", "date_created"},
	"status":         {"status", "order_status"},
	"total":          {"order_total", "total"},
	"refunded_total": {"refunded_total"},
	"currency":       {"order_currency", "currency"},
	"email":          {"billing_email", "email", "customer_email"},
	"customer_id":    {"customer_id", "customer_user"},
	"first_name":     {"billing_first_name"},
	"last_name":      {"billing_last_name"},
	"phone":          {"billing_phone"},
	"country":        {"billing_country"},
	"date_paid":      {"date_paid", "paid_date"},
	"date_completed": {"date_completed", "completed_date"},
	"line_items":     {"line_items"},
}

func readWooCommerce(r *bufio.Reader, b *batcher) error {
	if b.opts.StoreID == "" {
		return fmt.Errorf("import: %s: %s needs the store id (--store) to give orders the ids live webhooks use", b.file, FormatWooCommerce)
	}
	t, err := newTable(r, b.file)
	if err != nil {
		return err
	}
	for _, need := range []string{"order_id|order_number", "date", "status", "total", "email"} {
		found := false
		for _, alt := range strings.Split(need, "|") {
			for _, col := range wooColumns[alt] {
				if _, ok := t.col[col]; ok {
					found = true
				}
			}
		}
		if !found {
			names := []string{}
			for _, alt := range strings.Split(need, "|") {
				names = append(names, wooColumns[alt][0])
			}
			return fmt.Errorf("import: %s: not a %s file: missing column %s", b.file, FormatWooCommerce, strings.Join(names, " or "))
		}
	}
	_, packed := t.col["line_items"]
	done := map[string]bool{}
	var cur *wooOrder
	finish := func() error {
		if cur == nil {
			return nil
		}
		o := cur
		cur = nil
		done[o.id] = true
		if o.err != nil {
			b.reject(o.errLine, o.rows, "order %s: %v", o.id, o.err)
			return nil
		}
		recs, skip, err := wooRecords(o, b.opts)
		switch {
		case err != nil:
			b.reject(o.line, o.rows, "order %s: %v", o.id, err)
			return nil
		case skip:
			b.rep.Skipped += o.rows
			return nil
		}
		return b.add(o.line, o.rows, "order "+o.id, recs...)
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
		id := firstNonEmpty(t.first(wooColumns["order_id"]...), t.first(wooColumns["order_number"]...))
		switch {
		case id == "":
			b.reject(line, 1, "no order_id: every row must name its order")
			continue
		case cur != nil && id == cur.id:
		case done[id]:
			b.reject(line, 1, "order %s continues here after other orders; keep an order's rows together", id)
			continue
		default:
			if err := finish(); err != nil {
				return err
			}
			cur = &wooOrder{id: id, line: line, fields: map[string]string{}}
		}
		cur.rows++
		for key, cols := range wooColumns {
			if v := t.first(cols...); v != "" && cur.fields[key] == "" {
				cur.fields[key] = v
			}
		}
		if cur.err != nil {
			continue
		}
		currency := firstNonEmpty(cur.fields["currency"], b.opts.Currency)
		var items []behavior.Item
		if packed {
			items, err = wooPackedItems(t.get("line_items"), currency)
		} else {
			var it *behavior.Item
			if it, err = wooRowItem(t, currency); it != nil {
				items = []behavior.Item{*it}
			}
		}
		if err != nil {
			cur.err, cur.errLine = err, line
			continue
		}
		cur.items = append(cur.items, items...)
	}
	return finish()
}

// wooItem builds an item from a line total and quantity.
func wooItem(name, sku, qty, total, productID, variationID, currency string) (behavior.Item, error) {
	it := behavior.Item{Title: name, SKU: sku, ProductID: productID, VariantID: variationID, Quantity: 1}
	if productID == "0" {
		it.ProductID = ""
	}
	if variationID == "0" {
		it.VariantID = ""
	}
	if qty != "" {
		n, err := strconv.Atoi(qty)
		if err != nil || n < 0 {
			return it, fmt.Errorf("item quantity %q is not a count", qty)
		}
		it.Quantity = n
	}
	t, err := behavior.ParseMoney(total, currency)
	if err != nil {
		return it, fmt.Errorf("item total %q is not an amount", total)
	}
	it.Price = t
	if it.Quantity > 0 {
		it.Price = t / int64(it.Quantity)
	}
	return it, nil
}

func wooRowItem(t *table, currency string) (*behavior.Item, error) {
	name, sku, qty, total := t.get("item_name"), t.get("item_sku"), t.get("item_quantity"), t.get("item_total")
	if name == "" && sku == "" && qty == "" && total == "" {
		return nil, nil
	}
	it, err := wooItem(name, sku, qty, total, t.first("item_product_id", "product_id"), t.first("item_variation_id", "variation_id"), currency)
	if err != nil {
		return nil, err
	}
	return &it, nil
}

// wooPackedItems reads the Default layout's line_items cell.
func wooPackedItems(cell, currency string) ([]behavior.Item, error) {
	if strings.TrimSpace(cell) == "" {
		return nil, nil
	}
	var items []behavior.Item
	for _, packed := range strings.Split(cell, ";") {
		if strings.TrimSpace(packed) == "" {
			continue
		}
		kv := map[string]string{}
		for _, part := range strings.Split(packed, "|") {
			k, v, ok := strings.Cut(part, ":")
			if !ok {
				return nil, fmt.Errorf("line_items entry %q is not key:value", part)
			}
			kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
		it, err := wooItem(kv["name"], kv["sku"], kv["quantity"], kv["total"], kv["product_id"], kv["variation_id"], currency)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// wooRecords turns an order into its lifecycle records; skip reports a
// status that is deliberately not imported.
func wooRecords(o *wooOrder, opts Options) (recs []behavior.Record, skip bool, err error) {
	f := o.fields
	status := strings.TrimPrefix(strings.ToLower(f["status"]), "wc-")
	switch status {
	case "pending", "checkout-draft", "failed":
		return nil, true, nil
	case "":
		return nil, false, fmt.Errorf("no status")
	}
	currency := strings.ToUpper(firstNonEmpty(f["currency"], opts.Currency))
	if currency == "" {
		return nil, false, fmt.Errorf("no currency: the row has no order_currency and none was given (--currency)")
	}
	at := func(key string) (time.Time, error) {
		if f[key] == "" {
			return time.Time{}, nil
		}
		t, err := parseTime(f[key], opts.Location)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %v", key, err)
		}
		return t, nil
	}
	created, err := at("date")
	if err != nil {
		return nil, false, err
	}
	if created.IsZero() {
		return nil, false, fmt.Errorf("no date")
	}
	paid, err := at("date_paid")
	if err != nil {
		return nil, false, err
	}
	completed, err := at("date_completed")
	if err != nil {
		return nil, false, err
	}
	total, err := behavior.ParseMoney(f["total"], currency)
	if err != nil {
		return nil, false, fmt.Errorf("order_total %q is not an amount", f["total"])
	}
	refunded, err := behavior.ParseMoney(f["refunded_total"], currency)
	if err != nil {
		return nil, false, fmt.Errorf("refunded_total %q is not an amount", f["refunded_total"])
	}
	if refunded < 0 {
		refunded = -refunded
	}
	base := behavior.Record{
		Source:   woocommerce.Name,
		Store:    opts.StoreID,
		Email:    f["email"],
		Currency: currency,
		Items:    o.items,
		Value:    total,
		Attrs: map[string]any{
			behavior.AttrTopic:          Topic,
			woocommerce.AttrStatus:      status,
			woocommerce.AttrOrderNumber: firstNonEmpty(f["order_number"], o.id),
		},
	}
	if c := f["customer_id"]; c != "" && c != "0" {
		base.CustomerID = c
	}
	if base.Email == "" && base.CustomerID == "" {
		return nil, false, fmt.Errorf("neither billing_email nor customer_id: nothing identifies the customer")
	}
	p := behavior.Person{FirstName: f["first_name"], LastName: f["last_name"], Phone: f["phone"], Country: strings.ToUpper(f["country"])}
	if p != (behavior.Person{}) {
		base.Person = &p
	}
	base.SetRef(behavior.RefOrderID, o.id)
	lifecycle := func(kind behavior.Kind, when time.Time) behavior.Record {
		r := base
		r.ID = woocommerce.OrderRecordID(opts.StoreID, kind, o.id)
		r.Kind, r.At = kind, when
		r.Attrs = make(map[string]any, len(base.Attrs))
		for k, v := range base.Attrs {
			r.Attrs[k] = v
		}
		return r
	}
	recs = []behavior.Record{lifecycle(behavior.OrderPlaced, created)}
	switch status {
	case "processing":
		recs = append(recs, lifecycle(behavior.OrderPaid, firstTime(paid, created)))
	case "completed":
		recs = append(recs,
			lifecycle(behavior.OrderPaid, firstTime(paid, created)),
			lifecycle(behavior.OrderFulfilled, firstTime(completed, created)))
	case "cancelled":
		recs = append(recs, lifecycle(behavior.OrderCancelled, created))
	case "refunded":
		r := lifecycle(behavior.OrderRefunded, latest(created, paid, completed))
		if refunded > 0 {
			r.Value = refunded
		}
		recs = append(recs, lifecycle(behavior.OrderPaid, firstTime(paid, created)), r)
	}
	return recs, false, nil
}
