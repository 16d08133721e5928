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
// recomputed from the stored history), nor does observing a record the
// last refit has already read. A record observed while a Refit is running
// joins the model being replaced and only counts again at the next
// refit, which rebuilds from the store.
//
// The model keeps the recent items of profiles observed since the last
// refit only; the first time a profile is observed after a refit (or a
// restart), its recent items are rebuilt from the records that refit read.
func (e *Engine) Observe(ctx context.Context, r behavior.Record, p storage.Profile) error {
	e.mu.RLock()
	rec, fit := e.rec, e.fit
	e.mu.RUnlock()
	var recs []behavior.Record
	loaded, gone := false, false
	load := func() error {
		if loaded {
			return nil
		}
		var err error
		// Brief: scores need kinds, times, values, items, seconds and
		// refs, not a page view's attributes, and this reads a person's
		// whole history for each of their orders and visits.
		recs, err = e.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Brief: true})
		gone = errors.Is(err, storage.ErrNotFound)
		if err != nil && !gone {
			return fmt.Errorf("insights: observe: %w", err)
		}
		loaded = true
		return nil
	}
	if !fit.learned(r) {
		if p.ID != "" && !fit.asOf.IsZero() && rec.usable(r) && !rec.hasContext(p.ID) {
			if err := load(); err != nil {
				return err
			}
			var learned []behavior.Record
			for _, x := range recs {
				if fit.learned(x) {
					learned = append(learned, x)
				}
			}
			rec.seedContext(p.ID, learned)
		}
		rec.Add(r, p.ID)
	}
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
	if err := load(); err != nil {
		return err
	}
	if gone {
		return nil
	}
	h := e.newHistory(p, recs, now)
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
