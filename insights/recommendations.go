package insights

import (
	"context"
	"errors"
	"fmt"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// recentHistory bounds how many of a profile's newest records feed its
// recommendations.
const recentHistory = 500

// Recommend returns up to n products for a profile: item-to-item from what
// they recently viewed, carted and bought, without what they bought
// (unless it is replenishable) and without what is out of stock, topped
// up with trending products. An unknown profile gets trending products
// (a new visitor). This is `recommend(profile, n)` in rules and
// `recommendations` in template data.
func (e *Engine) Recommend(ctx context.Context, profileID string, n int) ([]Recommendation, error) {
	if n <= 0 {
		return nil, nil
	}
	var recs []behavior.Record
	if profileID != "" {
		var err error
		recs, err = e.store.RecordsByProfile(ctx, profileID, storage.RecordQuery{Limit: recentHistory, Newest: true, Brief: true})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("insights: recommend: %w", err)
		}
	}
	e.mu.RLock()
	rec, fit := e.rec, e.fit
	e.mu.RUnlock()
	var hist []Interaction
	bought := map[string]bool{}
	for _, r := range recs {
		for _, pid := range behavior.ProductIDs(r.Items) {
			hist = append(hist, Interaction{ProductID: pid, Kind: r.Kind, At: r.At})
		}
	}
	for _, o := range Orders(recs) {
		for _, pid := range behavior.ProductIDs(o.Items) {
			bought[pid] = true
		}
	}
	products := map[string]storage.Product{}
	var lookupErr error
	skip := func(pid string) bool {
		if bought[pid] {
			if _, replenishable := fit.replenish[pid]; !replenishable {
				return true
			}
		}
		p, err := e.store.Product(ctx, pid)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return true // nothing to show: no title, no link
		case err != nil:
			lookupErr = err
			return true
		}
		products[pid] = p
		// Only products the store itself has named: anyone can invent one
		// through the tracking API (storage.Product.Unverified).
		return !p.InStock() || p.Unverified
	}
	scored := rec.Recommend(hist, n, e.opts.Clock.Now(), skip)
	if lookupErr != nil && len(scored) == 0 {
		return nil, fmt.Errorf("insights: recommend: catalog: %w", lookupErr)
	}
	out := make([]Recommendation, 0, len(scored))
	for _, s := range scored {
		p := products[s.ProductID]
		out = append(out, Recommendation{
			ProductID: s.ProductID, Title: p.Title, URL: p.URL, ImageURL: p.ImageURL,
			Price: p.Price, Currency: p.Currency, Score: s.Score,
		})
	}
	return out, nil
}
