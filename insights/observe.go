package insights

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

// Engine is the insights observer the rules engine calls after each record.
var _ dispatch.Observer = (*Engine)(nil)

// Observe implements dispatch.Observer: the record joins the
// recommendation model, and for records that move engagement, intent or
// the segment the profile is rescored with the last fit's parameters.
// Replaying a record changes nothing (the model dedupes by id, scores are
// recomputed from the stored history). A record observed while a Refit is
// running joins the model being replaced and only counts again at the
// next refit, which rebuilds from the store.
func (e *Engine) Observe(ctx context.Context, r behavior.Record, p storage.Profile) error {
	e.mu.RLock()
	rec, fit := e.rec, e.fit
	e.mu.RUnlock()
	rec.Add(r, p.ID)
	_, eng := engagementWeights[r.Kind]
	_, intent := intentWeights[r.Kind]
	order := r.Kind == behavior.OrderPlaced || r.Kind == behavior.OrderPaid || r.Kind == behavior.OrderCancelled
	if p.ID == "" || !(eng || intent || order) {
		return nil
	}
	now := e.opts.Clock.Now()
	if r.At.After(now) {
		now = r.At
	}
	recs, err := e.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{})
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("insights: observe: %w", err)
	}
	h := history{profile: p, records: recs, orders: Orders(recs)}
	var ps []Purchase
	for _, o := range h.orders {
		ps = append(ps, Purchase{At: o.At, Value: float64(orderValue(o))})
	}
	h.rfm, h.buyer = Summarize(ps, now, e.location(p))
	scores, seg := e.score(h, now, fit)
	// Keep what only a refit computes (best hour) when this pass has no
	// opinion; everything it does compute replaces the old value.
	merged := maps.Clone(p.Scores)
	if merged == nil {
		merged = map[string]float64{}
	}
	for _, k := range []string{ScorePAlive, ScoreChurnRisk, ScoreExpectedOrders, ScoreNextOrderAt, ScoreCLV, ScoreEngagement, ScoreIntent} {
		delete(merged, k)
	}
	maps.Copy(merged, scores)
	if err := e.store.SetScores(ctx, p.ID, merged, seg, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("insights: observe: set scores: %w", err)
	}
	return nil
}
