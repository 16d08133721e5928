package storage

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

func stock(n int64) *int64 { return &n }

// productUpdate is a product_updated record with one item per variant.
func productUpdate(id string, at time.Time, variants ...behavior.Item) behavior.Record {
	r := rec(id, behavior.ProductUpdated, at, "")
	r.Source, r.Store, r.Currency = "shopify", "main", "USD"
	for i := range variants {
		variants[i].ProductID = "p1"
	}
	r.Items = variants
	return r
}

func TestCatalogDerivation(t *testing.T) {
	t.Parallel()
	v := func(price int64, avail *int64) behavior.Item {
		return behavior.Item{Title: "Trail Runner", URL: "https://shop/p1", Price: price, Available: avail}
	}
	tests := []struct {
		name      string
		updates   []behavior.Record
		wantKinds []behavior.Kind // derived records of the last update
		wantPrice int64
		wantStock *int64
	}{
		{"first sight derives nothing", []behavior.Record{productUpdate("u1", t0, v(5400, stock(3)), v(5000, stock(2)))}, nil, 5000, stock(5)},
		{"price drop", []behavior.Record{
			productUpdate("u1", t0, v(5400, stock(3))),
			productUpdate("u2", t0.Add(time.Hour), v(4500, stock(3))),
		}, []behavior.Kind{behavior.PriceDropped}, 4500, stock(3)},
		{"price rise", []behavior.Record{
			productUpdate("u1", t0, v(4500, stock(3))),
			productUpdate("u2", t0.Add(time.Hour), v(5400, stock(3))),
		}, nil, 5400, stock(3)},
		{"back in stock", []behavior.Record{
			productUpdate("u1", t0, v(5400, stock(0)), v(5400, stock(-1))),
			productUpdate("u2", t0.Add(time.Hour), v(5400, stock(0)), v(5400, stock(4))),
		}, []behavior.Kind{behavior.BackInStock}, 5400, stock(4)},
		{"both", []behavior.Record{
			productUpdate("u1", t0, v(5400, stock(0))),
			productUpdate("u2", t0.Add(time.Hour), v(4000, stock(2))),
		}, []behavior.Kind{behavior.PriceDropped, behavior.BackInStock}, 4000, stock(2)},
		{"unknown stock is not back in stock", []behavior.Record{
			productUpdate("u1", t0, v(5400, stock(0))),
			productUpdate("u2", t0.Add(time.Hour), v(5400, stock(3)), v(5400, nil)),
		}, nil, 5400, nil},
		{"stale update ignored", []behavior.Record{
			productUpdate("u2", t0.Add(time.Hour), v(5400, stock(0))),
			productUpdate("u1", t0, v(3000, stock(9))),
		}, nil, 5400, stock(0)},
		{"price-only update keeps stock", []behavior.Record{
			productUpdate("u1", t0, v(5400, stock(7))),
			productUpdate("u2", t0.Add(time.Hour), v(5000, nil)),
		}, []behavior.Kind{behavior.PriceDropped}, 5000, stock(7)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{})
			ctx := context.Background()
			var res AppendResult
			for _, u := range tc.updates {
				res = mustAppend(t, db, u)
			}
			last := tc.updates[len(tc.updates)-1]
			var kinds []behavior.Kind
			for _, r := range res.New[1:] {
				kinds = append(kinds, r.Kind)
				if r.ID != behavior.DeriveID(last.ID, string(r.Kind), "p1") || r.Source != "nudge" || r.Store != "main" ||
					!r.At.Equal(last.At) || len(r.Items) != 1 || r.Items[0].ProductID != "p1" || r.Email != "" {
					t.Errorf("derived %+v", r)
				}
				if r.Kind == behavior.PriceDropped && r.Attrs["old_price"] == nil {
					t.Errorf("price drop without old_price: %+v", r.Attrs)
				}
				if _, err := db.Record(ctx, r.ID); err != nil {
					t.Errorf("derived record not stored: %v", err)
				}
				if _, ok := res.Profiles[r.ID]; ok {
					t.Errorf("derived record has a profile")
				}
			}
			if !slices.Equal(kinds, tc.wantKinds) {
				t.Errorf("derived %v, want %v", kinds, tc.wantKinds)
			}
			p, err := db.Product(ctx, "p1")
			if err != nil {
				t.Fatal(err)
			}
			if p.Price != tc.wantPrice || (p.Available == nil) != (tc.wantStock == nil) || (p.Available != nil && *p.Available != *tc.wantStock) {
				t.Errorf("product price %d stock %v, want %d %v", p.Price, p.Available, tc.wantPrice, tc.wantStock)
			}
			// Replaying the last update derives nothing new.
			if again := mustAppend(t, db, last); len(again.New) != 0 || again.Duplicates != 1 {
				t.Errorf("replay: %+v", again)
			}
		})
	}
}

func TestCatalogFilledFromItems(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	view := rec("v", behavior.ProductViewed, t0, "ann@example.com")
	view.Items = []behavior.Item{{ProductID: "p2", Title: "Sock", Price: 900}}
	mustAppend(t, db, view)
	order := rec("o", behavior.OrderPlaced, t0.Add(time.Hour), "ann@example.com")
	order.Items = []behavior.Item{{ProductID: "p2", Title: "Sock (discounted)", Price: 700, ImageURL: "https://img/p2", Category: "socks"}}
	mustAppend(t, db, order)
	p, err := db.Product(ctx, "p2")
	if err != nil {
		t.Fatal(err)
	}
	if p.Title != "Sock" || p.Price != 900 || p.ImageURL != "https://img/p2" || p.Category != "socks" {
		t.Errorf("product %+v", p)
	}
	// Catalog data overwrites item-sourced data; the item-sourced price is
	// no baseline for a price drop.
	res := mustAppend(t, db, func() behavior.Record {
		r := productUpdate("u", t0.Add(2*time.Hour), behavior.Item{Title: "Wool Sock", Price: 800})
		r.Items[0].ProductID = "p2"
		return r
	}())
	if len(res.New) != 1 {
		t.Errorf("derived from item-sourced entry: %+v", res.New)
	}
	p, _ = db.Product(ctx, "p2")
	if p.Title != "Wool Sock" || p.Price != 800 {
		t.Errorf("product %+v", p)
	}
	// Items never overwrite catalog data.
	order2 := rec("o2", behavior.OrderPlaced, t0.Add(3*time.Hour), "ann@example.com")
	order2.Items = []behavior.Item{{ProductID: "p2", Title: "Other", Price: 1}}
	mustAppend(t, db, order2)
	if p, _ = db.Product(ctx, "p2"); p.Title != "Wool Sock" || p.Price != 800 {
		t.Errorf("product overwritten: %+v", p)
	}
	var n int
	if err := db.ScanProducts(ctx, func(Product) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("scan %d %v", n, err)
	}
	if _, err := db.Product(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing product: %v", err)
	}
}

// What the tracking API says of a product (its write key is public) is
// kept apart until the store names the product: the audit could make the
// shop email an invented product with its own title and link.
func TestCatalogFromTrackingIsUnverified(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	web := func(id, pid, title, url string) behavior.Record {
		r := rec(id, behavior.ProductViewed, t0, "mallory@example.com")
		r.Source = behavior.SourceWeb
		r.Items = []behavior.Item{{ProductID: pid, Title: title, URL: url, Price: 100}}
		return r
	}
	mustAppend(t, db, web("w1", "fake", "Claim your refund at evil.example", "https://evil.example/x"))
	mustAppend(t, db, web("w2", "real", "Refund here: evil.example", "https://evil.example/y"))
	if p, err := db.Product(ctx, "fake"); err != nil || !p.Unverified {
		t.Fatalf("a product known only from tracking: %+v %v, want unverified", p, err)
	}
	// The store names "real" in a signed checkout: its word replaces the
	// tracking call's, and the product is verified.
	co := rec("c1", behavior.CheckoutStarted, t0.Add(time.Hour), "ann@example.com")
	co.Source = "shopify"
	co.Items = []behavior.Item{{ProductID: "real", Title: "Trail Runner", Price: 5400}}
	mustAppend(t, db, co)
	p, err := db.Product(ctx, "real")
	if err != nil || p.Unverified || p.Title != "Trail Runner" || p.URL != "" || p.Price != 5400 {
		t.Fatalf("after the store's checkout: %+v %v", p, err)
	}
	// Later tracking calls may fill what the store left empty (the
	// storefront's own product URL), without making it unverified again.
	mustAppend(t, db, web("w3", "real", "Other title", "https://example.com/products/trail"))
	if p, _ = db.Product(ctx, "real"); p.Unverified || p.Title != "Trail Runner" || p.URL != "https://example.com/products/trail" {
		t.Errorf("after a later view: %+v", p)
	}
}

func TestProfilesByProduct(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	item := []behavior.Item{{ProductID: "p1"}}
	view := rec("v", behavior.ProductViewed, t0, "ann@example.com")
	view.Items = item
	cart := rec("c", behavior.CartUpdated, t0.Add(time.Hour), "bob@example.com")
	cart.Items = item
	old := rec("o", behavior.ProductViewed, t0.Add(-30*24*time.Hour), "cy@example.com")
	old.Items = item
	res := mustAppend(t, db, view, cart, old)
	ann, bob, cy := res.Profiles["v"], res.Profiles["c"], res.Profiles["o"]
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	tests := []struct {
		name  string
		kinds []behavior.Kind
		since time.Time
		want  []string
	}{
		{"all", nil, time.Time{}, sorted(ann, bob, cy)},
		{"since", nil, t0.Add(-time.Hour), sorted(ann, bob)},
		{"kinds", []behavior.Kind{behavior.CartUpdated}, time.Time{}, []string{bob}},
		{"kinds since", []behavior.Kind{behavior.ProductViewed}, t0.Add(-time.Hour), []string{ann}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.ProfilesByProduct(ctx, "p1", tc.kinds, tc.since)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Shopify's inventory_levels/update names only an inventory item and a
// location: the catalog resolves it through the variant → inventory item
// map of an earlier products/update, and stock returning derives
// back_in_stock.
func TestInventoryLevelsResolveToProducts(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	upd := productUpdate("u1", t0,
		behavior.Item{VariantID: "v1", Title: "Trail Runner", Price: 5400, Available: stock(0)},
		behavior.Item{VariantID: "v2", Title: "Trail Runner", Price: 5400, Available: stock(0)},
	)
	upd.Attrs = map[string]any{"inventory_items": map[string]any{"v1": "i1", "v2": "i2"}}
	level := func(id, item, loc string, at time.Time, n int64) behavior.Record {
		r := rec(id, behavior.ProductUpdated, at, "")
		r.Source, r.Store = "shopify", "main"
		r.Items = []behavior.Item{{Available: stock(n)}}
		r.Attrs = map[string]any{"inventory_item_id": item, "location_id": loc}
		return r
	}
	steps := []struct {
		rec       behavior.Record
		wantStock int64
		derived   []behavior.Kind
	}{
		{upd, 0, nil},
		{level("l1", "unknown-item", "loc1", t0.Add(time.Minute), 9), 0, nil}, // never seen: ignored
		{level("l2", "i1", "loc1", t0.Add(2*time.Minute), 4), 4, []behavior.Kind{behavior.BackInStock}},
		{level("l3", "i2", "loc1", t0.Add(3*time.Minute), 1), 5, nil},
		{level("l4", "i1", "loc2", t0.Add(4*time.Minute), 2), 7, nil}, // a second location adds up
		{level("l5", "i1", "loc1", t0.Add(5*time.Minute), 0), 3, nil},
	}
	for i, s := range steps {
		res, err := db.Append(ctx, Ingest{Records: []behavior.Record{s.rec}})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var kinds []behavior.Kind
		for _, r := range res.New {
			if r.Kind.Derived() {
				kinds = append(kinds, r.Kind)
			}
		}
		if !slices.Equal(kinds, s.derived) {
			t.Errorf("step %d derived %v, want %v", i, kinds, s.derived)
		}
		p, err := db.Product(ctx, "p1")
		if err != nil {
			t.Fatal(err)
		}
		if p.Available == nil || *p.Available != s.wantStock {
			t.Errorf("step %d: stock %v, want %d", i, p.Available, s.wantStock)
		}
	}
}
