package storage

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// storedProduct is the catalog bucket's value: a Product plus whether its
// facts came from the store's catalog (product_updated) rather than from
// items seen in carts and orders, whose prices may be discounted and
// whose entries must never overwrite catalog data nor trigger price-drop
// or back-in-stock records.
type storedProduct struct {
	Product
	FromCatalog bool `json:"from_catalog,omitempty"`
	// VariantStock is each variant's total stock as products/update last
	// said; LocationStock is "variant@location" → stock from
	// inventory_levels/update. A variant with location figures is the sum
	// of those (they are newer and exact per location); one without falls
	// back to its total.
	VariantStock  map[string]int64 `json:"variant_stock,omitempty"`
	LocationStock map[string]int64 `json:"location_stock,omitempty"`
}

// Attribute keys that connectors use to let the catalog resolve
// inventory-level updates (Shopify's inventory_levels/update names only an
// inventory item and a location; products/update maps variants to
// inventory items).
const (
	attrInventoryItems  = "inventory_items"   // map variant id → inventory item id
	attrInventoryItemID = "inventory_item_id" // on a level update
	attrLocationID      = "location_id"       // on a level update
)

// inventoryKey indexes an inventory item of a store.
func inventoryKey(store, item string) []byte { return join([]byte(store), []byte(item)) }

// rememberInventoryItems indexes inventory item → product and variant
// from a products/update record, so later level updates can be resolved.
func rememberInventoryItems(tx *bolt.Tx, r behavior.Record) error {
	m := stringMap(r.Attrs[attrInventoryItems])
	if len(m) == 0 {
		return nil
	}
	productOf := map[string]string{}
	for _, it := range r.Items {
		if it.VariantID != "" && it.ProductID != "" {
			productOf[it.VariantID] = it.ProductID
		}
	}
	b := tx.Bucket(bucketInventoryItems)
	for variant, item := range m {
		pid := productOf[variant]
		if pid == "" || item == "" {
			continue
		}
		if err := b.Put(inventoryKey(r.Store, item), join([]byte(pid), []byte(variant))); err != nil {
			return err
		}
	}
	return nil
}

// resolveInventoryLevel turns a level update (an item without product id,
// with the inventory item in attrs) into the product and variant it is
// about; ok is false when the item was never seen in a products/update.
func resolveInventoryLevel(tx *bolt.Tx, r behavior.Record) (productID, variantID, location string, ok bool) {
	item, _ := r.Attrs[attrInventoryItemID].(string)
	if item == "" {
		return "", "", "", false
	}
	v := tx.Bucket(bucketInventoryItems).Get(inventoryKey(r.Store, item))
	if v == nil {
		return "", "", "", false
	}
	pid, variant, _ := bytes.Cut(v, []byte{0})
	location, _ = r.Attrs[attrLocationID].(string)
	return string(pid), string(variant), location, true
}

// stringMap reads a map of strings from an attribute that may be
// map[string]any (decoded JSON) or map[string]string.
func stringMap(v any) map[string]string {
	switch m := v.(type) {
	case map[string]string:
		return m
	case map[string]any:
		out := make(map[string]string, len(m))
		for k, x := range m {
			if s, ok := x.(string); ok {
				out[k] = s
			}
		}
		return out
	}
	return nil
}

// stock recomputes the product's stock from its variants; nil when no
// variant's stock is known.
func (p *storedProduct) stock() *int64 {
	if len(p.VariantStock) == 0 && len(p.LocationStock) == 0 {
		return nil
	}
	perVariant := map[string]int64{}
	for v, n := range p.VariantStock {
		perVariant[v] = n
	}
	located := map[string]bool{}
	for key, n := range p.LocationStock {
		v, _, _ := strings.Cut(key, "@")
		if !located[v] {
			located[v] = true
			perVariant[v] = 0
		}
		perVariant[v] += n
	}
	var total int64
	for _, n := range perVariant {
		total += n
	}
	return &total
}

// derivedSource is Record.Source of records nudge derives itself.
const derivedSource = "nudge"

// applyCatalogUpdate upserts the products of a product_updated record and
// returns the price_dropped / back_in_stock records the change implies.
// Items sharing a product id are that product's variants: the price is the
// lowest variant price, stock the sum when every variant's stock is known.
// An update older than the catalog entry is ignored (webhooks arrive out
// of order) and derives nothing.
func applyCatalogUpdate(tx *bolt.Tx, r behavior.Record, now time.Time) ([]behavior.Record, error) {
	b := tx.Bucket(bucketCatalog)
	if err := rememberInventoryItems(tx, r); err != nil {
		return nil, err
	}
	var order []string
	groups := map[string][]behavior.Item{}
	// level is set for an inventory-level update: one item, no product id.
	var level struct{ variant, location string }
	for _, it := range r.Items {
		if it.ProductID == "" {
			pid, variant, location, ok := resolveInventoryLevel(tx, r)
			if !ok || it.Available == nil {
				continue
			}
			it.ProductID, it.VariantID = pid, variant
			level.variant, level.location = variant, location
		}
		if _, ok := groups[it.ProductID]; !ok {
			order = append(order, it.ProductID)
		}
		groups[it.ProductID] = append(groups[it.ProductID], it)
	}
	var derived []behavior.Record
	for _, pid := range order {
		var old storedProduct
		exists, err := getJSON(b, []byte(pid), &old)
		if err != nil {
			return nil, err
		}
		if exists && old.FromCatalog && r.At.Before(old.UpdatedAt) {
			continue
		}
		np := old
		np.ProductID = pid
		np.FromCatalog = true
		np.Unverified = false
		np.UpdatedAt = r.At
		if r.Store != "" {
			np.Store = r.Store
		}
		if r.Currency != "" {
			np.Currency = r.Currency
		}
		// Copy the maps: old must keep the previous stock for comparison.
		np.VariantStock = copyStock(old.VariantStock)
		np.LocationStock = copyStock(old.LocationStock)
		var price, stock int64
		anyStock, allStock := false, true
		for _, it := range groups[pid] {
			if it.Price > 0 && (price == 0 || it.Price < price) {
				price = it.Price
			}
			if it.Available != nil {
				anyStock = true
				stock += *it.Available
				switch {
				case level.variant != "" && it.VariantID == level.variant:
					np.LocationStock[level.variant+"@"+level.location] = *it.Available
				case it.VariantID != "":
					np.VariantStock[it.VariantID] = *it.Available
				}
			} else {
				allStock = false
			}
			overwrite(&np.Title, it.Title)
			overwrite(&np.URL, it.URL)
			overwrite(&np.ImageURL, it.ImageURL)
			overwrite(&np.Category, it.Category)
		}
		if price > 0 {
			np.Price = price
		}
		// No variant said anything about stock: keep what we knew. Some
		// did and some did not: the total is unknown — unless per-variant
		// figures (from earlier updates and inventory levels) cover it.
		if anyStock {
			np.Available = nil
			switch {
			case len(np.VariantStock) > 0 || len(np.LocationStock) > 0:
				np.Available = np.stock()
			case allStock:
				np.Available = &stock
			}
		}
		if err := putJSON(b, []byte(pid), np); err != nil {
			return nil, err
		}
		if !exists || !old.FromCatalog {
			continue
		}
		if old.Price > np.Price && np.Price > 0 {
			derived = append(derived, derivedRecord(r, behavior.PriceDropped, np.Product, map[string]any{"old_price": old.Price}, now))
		}
		if old.Available != nil && *old.Available <= 0 && np.Available != nil && *np.Available > 0 {
			derived = append(derived, derivedRecord(r, behavior.BackInStock, np.Product, map[string]any{"old_available": *old.Available}, now))
		}
	}
	return derived, nil
}

func copyStock(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// overwrite sets *dst to any non-empty src.
func overwrite(dst *string, src string) {
	if src != "" {
		*dst = src
	}
}

// fillEmpty sets *dst only if it is empty, reporting whether it did.
func fillEmpty(dst *string, src string) bool {
	if *dst == "" && src != "" {
		*dst = src
		return true
	}
	return false
}

// derivedRecord builds a record nudge emits about a catalog change. Its id
// is derived from the source record, so a replayed update derives nothing
// new.
func derivedRecord(src behavior.Record, kind behavior.Kind, p Product, attrs map[string]any, now time.Time) behavior.Record {
	item := behavior.Item{
		ProductID: p.ProductID, Title: p.Title, URL: p.URL, ImageURL: p.ImageURL,
		Price: p.Price, Category: p.Category,
	}
	if p.Available != nil {
		v := *p.Available
		item.Available = &v
	}
	return behavior.Record{
		ID:         behavior.DeriveID(src.ID, string(kind), p.ProductID),
		Kind:       kind,
		Source:     derivedSource,
		Store:      src.Store,
		At:         src.At,
		ReceivedAt: now,
		Currency:   p.Currency,
		Items:      []behavior.Item{item},
		Attrs:      attrs,
	}
}

// fillCatalog lets items seen in views, carts and orders fill catalog
// fields that are still empty; it never overwrites what is known. Items of
// one product (an order's variants) are applied to one decoded copy, which
// is written once, as the last of one write per item would have left it.
func fillCatalog(tx *bolt.Tx, r behavior.Record) error {
	b := tx.Bucket(bucketCatalog)
	// Tracking calls are signed by a key every storefront visitor can
	// read: what they say of products is kept apart (Product.Unverified).
	untrusted := r.Source == behavior.SourceWeb
	type filled struct {
		id      string
		p       storedProduct
		changed bool
	}
	var seen []*filled // few: one per distinct product of the record
	for _, it := range r.Items {
		if it.ProductID == "" {
			continue
		}
		var f *filled
		for _, x := range seen {
			if x.id == it.ProductID {
				f = x
				break
			}
		}
		if f == nil {
			f = &filled{id: it.ProductID}
			exists, err := getJSON(b, []byte(it.ProductID), &f.p)
			if err != nil {
				return err
			}
			if !exists {
				f.p.ProductID = it.ProductID
				f.p.UpdatedAt = r.At
				f.p.Unverified = untrusted
				f.changed = true
			} else if f.p.Unverified && !untrusted {
				// The store names it now: its facts replace whatever the
				// tracking API said first.
				f.p.Product = Product{ProductID: it.ProductID, UpdatedAt: r.At}
				f.changed = true
			}
			seen = append(seen, f)
		}
		p := &f.p
		changed := f.changed
		changed = fillEmpty(&p.Store, r.Store) || changed
		changed = fillEmpty(&p.Title, it.Title) || changed
		changed = fillEmpty(&p.URL, it.URL) || changed
		changed = fillEmpty(&p.ImageURL, it.ImageURL) || changed
		changed = fillEmpty(&p.Category, it.Category) || changed
		if p.Price == 0 && it.Price > 0 {
			p.Price = it.Price
			changed = fillEmpty(&p.Currency, r.Currency) || true
		}
		f.changed = changed
	}
	for _, f := range seen {
		if f.changed {
			if err := putJSON(b, []byte(f.id), f.p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Product returns what the catalog knows of one product.
func (db *DB) Product(ctx context.Context, productID string) (Product, error) {
	var p storedProduct
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketCatalog), []byte(productID), &p)
		if err == nil && !ok {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Product{}, fmt.Errorf("storage: product %q: %w", productID, err)
	}
	return p.Product, nil
}

// ScanProducts calls fn for every product in id order, reading in chunks.
func (db *DB) ScanProducts(ctx context.Context, fn func(Product) error) error {
	err := pageScan(ctx, db, bucketCatalog, nil, nil,
		func(_ *bolt.Tx, k, v []byte) (Product, bool, error) {
			var p storedProduct
			err := decodeJSON(k, v, &p)
			return p.Product, err == nil, err
		}, fn)
	if err != nil {
		return fmt.Errorf("storage: scan products: %w", err)
	}
	return nil
}
