package storage

import (
	"context"
	"fmt"
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
	var order []string
	groups := map[string][]behavior.Item{}
	for _, it := range r.Items {
		if it.ProductID == "" {
			continue
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
		np.UpdatedAt = r.At
		if r.Store != "" {
			np.Store = r.Store
		}
		if r.Currency != "" {
			np.Currency = r.Currency
		}
		var price, stock int64
		anyStock, allStock := false, true
		for _, it := range groups[pid] {
			if it.Price > 0 && (price == 0 || it.Price < price) {
				price = it.Price
			}
			if it.Available != nil {
				anyStock = true
				stock += *it.Available
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
		// did and some did not: the total is unknown.
		if anyStock {
			np.Available = nil
			if allStock {
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
// fields that are still empty; it never overwrites what is known.
func fillCatalog(tx *bolt.Tx, r behavior.Record) error {
	b := tx.Bucket(bucketCatalog)
	for _, it := range r.Items {
		if it.ProductID == "" {
			continue
		}
		var p storedProduct
		exists, err := getJSON(b, []byte(it.ProductID), &p)
		if err != nil {
			return err
		}
		changed := !exists
		if !exists {
			p.ProductID = it.ProductID
			p.UpdatedAt = r.At
		}
		changed = fillEmpty(&p.Store, r.Store) || changed
		changed = fillEmpty(&p.Title, it.Title) || changed
		changed = fillEmpty(&p.URL, it.URL) || changed
		changed = fillEmpty(&p.ImageURL, it.ImageURL) || changed
		changed = fillEmpty(&p.Category, it.Category) || changed
		if p.Price == 0 && it.Price > 0 {
			p.Price = it.Price
			changed = fillEmpty(&p.Currency, r.Currency) || true
		}
		if changed {
			if err := putJSON(b, []byte(it.ProductID), p); err != nil {
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
