package insights

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nudge-email/nudge/storage"
)

// savedVersion changes whenever savedFit or savedRecommender does; a saved
// fit of another version is ignored (and replaced by the next refit).
const savedVersion = 1

// savedFit is what a refit learned, as the store keeps it between runs
// (storage.Insights): the report (which holds the BG/NBD, Gamma-Gamma and
// segment-threshold fits), the replenishment intervals, the shop's
// send-time histogram and the recommendation model. Nothing in it is
// about one person: profiles' own best hours are in their scores.
type savedFit struct {
	Version int
	// Options is the fingerprint of the options the fit was made with; a
	// fit made with other options is not reused.
	Options   string
	Report    Report
	Replenish map[string]ReplenishInterval
	ShopHours Histogram
	Rec       savedRecommender
}

// savedRecommender is a Recommender's co-occurrence model: each pair once
// (the matrix is symmetric), as three parallel columns. The recent items
// of profiles and the ids of observed records are not kept: a restored
// model seeds a profile's recent items from its stored history when it is
// first observed (Engine.Observe).
type savedRecommender struct {
	Origin time.Time
	Names  []string
	Pop    []float64
	I, J   []int32
	C      []float64
}

// snapshot copies the model's co-occurrences for saving.
func (m *Recommender) snapshot() savedRecommender {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := savedRecommender{Origin: m.origin, Names: append([]string(nil), m.names...), Pop: append([]float64(nil), m.pop...)}
	for i, row := range m.adj {
		js := make([]int32, 0, len(row))
		for j := range row {
			if j > int32(i) {
				js = append(js, j)
			}
		}
		sort.Slice(js, func(a, b int) bool { return js[a] < js[b] })
		for _, j := range js {
			s.I, s.J, s.C = append(s.I, int32(i)), append(s.J, j), append(s.C, row[j])
		}
	}
	return s
}

// restoreRecommender rebuilds a model from a snapshot.
func restoreRecommender(cfg RecommenderConfig, s savedRecommender) (*Recommender, error) {
	n := len(s.Names)
	if len(s.Pop) != n || len(s.I) != len(s.J) || len(s.I) != len(s.C) {
		return nil, errors.New("inconsistent recommendation model")
	}
	m := NewRecommender(cfg)
	m.origin = s.Origin
	for _, name := range s.Names {
		if _, dup := m.ids[name]; dup {
			return nil, fmt.Errorf("product %q twice in the recommendation model", name)
		}
		m.intern(name)
	}
	copy(m.pop, s.Pop)
	for k := range s.I {
		i, j := s.I[k], s.J[k]
		if i < 0 || j < 0 || int(i) >= n || int(j) >= n || i == j {
			return nil, errors.New("inconsistent recommendation model")
		}
		m.adj[i][j] = s.C[k]
		m.adj[j][i] = s.C[k]
	}
	return m, nil
}

// fingerprint identifies the options the saved models depend on: the
// shop's time zone (purchase days, send hours) and the recommender's
// tuning. The thresholds of Options.Config only decide what a refit
// derives from the models, so changing them does not discard a fit.
func (e *Engine) fingerprint() string {
	b, _ := json.Marshal(struct {
		Location    string
		Recommender RecommenderConfig
	}{e.opts.Location.String(), e.opts.Recommender.withDefaults()})
	return string(b)
}

// save stores the fit in the store, if it keeps fits.
func (e *Engine) save(ctx context.Context, rep Report, fit *fitted, rec *Recommender) error {
	s := savedFit{
		Version: savedVersion, Options: e.fingerprint(), Report: rep,
		Replenish: fit.replenish, ShopHours: fit.shopHours, Rec: rec.snapshot(),
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s); err != nil {
		return fmt.Errorf("insights: encode fit: %w", err)
	}
	if err := e.store.PutInsightsModel(ctx, storage.InsightsModel{FittedAt: rep.AsOf, Data: buf.Bytes()}); err != nil {
		return fmt.Errorf("insights: save fit: %w", err)
	}
	return nil
}

// Restore loads the fit the last Refit saved in the store, if there is one
// made with the same options and no older than maxAge at now, and makes
// it the live one: the report, churn, value and send-time models and the
// recommendation model, as that Refit left them. Records observed after
// that Refit and before this process started are not in the restored
// recommendation model; the next Refit learns them. It reports the fit's
// as-of time and whether it was restored; a missing, stale, foreign or
// unreadable fit is not an error, only not restored.
func (e *Engine) Restore(ctx context.Context, now time.Time, maxAge time.Duration) (time.Time, bool, error) {
	m, err := e.store.InsightsModel(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	if maxAge > 0 && now.Sub(m.FittedAt) > maxAge {
		return m.FittedAt, false, nil
	}
	if m.BackfilledAt.After(m.FittedAt) {
		return m.FittedAt, false, nil // an import since: refit now
	}
	var s savedFit
	if err := gob.NewDecoder(bytes.NewReader(m.Data)).Decode(&s); err != nil {
		e.log.Warn("insights: saved fit unreadable; refitting", "error", err)
		return m.FittedAt, false, nil
	}
	if s.Version != savedVersion || s.Options != e.fingerprint() {
		return m.FittedAt, false, nil
	}
	rec, err := restoreRecommender(e.opts.Recommender, s.Rec)
	if err != nil {
		e.log.Warn("insights: saved fit unreadable; refitting", "error", err)
		return m.FittedAt, false, nil
	}
	if s.Report.Segments == nil {
		s.Report.Segments = map[string]int{}
	}
	if s.Report.Derived == nil {
		s.Report.Derived = map[string]int{}
	}
	fit := &fitted{
		asOf: s.Report.AsOf, bgnbd: s.Report.BGNBD, gg: s.Report.GammaGamma, replenish: s.Replenish,
		thresholds: s.Report.SegmentThresholds, shopHours: s.ShopHours,
	}
	if fit.replenish == nil {
		fit.replenish = map[string]ReplenishInterval{}
	}
	e.mu.Lock()
	e.rec, e.fit, e.report = rec, fit, s.Report
	e.mu.Unlock()
	return m.FittedAt, true, nil
}

// NextRefit restores the saved fit when it is fresh (see Restore) and
// returns how long until the next refit is due: refitEvery after the
// saved fit, or 0 (now) when there is none to reuse. A server calls it at
// start, so a restart does not read the whole history again.
func (e *Engine) NextRefit(ctx context.Context, now time.Time, refitEvery time.Duration) (time.Duration, error) {
	asOf, ok, err := e.Restore(ctx, now, refitEvery)
	if err != nil || !ok {
		return 0, err
	}
	return max(0, asOf.Add(refitEvery).Sub(now)), nil
}

// BackfilledSince reports when an import last stored records, if that was
// after the saved fit: the live models then miss that history until a
// refit. ok is false when the fit is current (or none was saved).
func (e *Engine) BackfilledSince(ctx context.Context) (at time.Time, ok bool, err error) {
	m, err := e.store.InsightsModel(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return m.BackfilledAt, m.BackfilledAt.After(m.FittedAt), nil
}
