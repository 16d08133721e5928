package insights

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/storage"
)

// Score keys written to profiles (CONTRACT §3).
const (
	ScorePAlive         = "p_alive"
	ScoreExpectedOrders = "expected_orders_90d"
	ScoreCLV            = "clv_365d"
	ScoreChurnRisk      = "churn_risk"
	ScoreNextOrderAt    = "next_order_at" // unix seconds
	ScoreBestHour       = "best_hour"     // 0–23, the profile's local time
	ScoreEngagement     = "engagement"
	ScoreIntent         = "intent"
)

// Options configure an Engine.
type Options struct {
	// Config holds thresholds from the config file; zero fields take the
	// documented defaults (90d, 0.3, 3d).
	Config config.Insights
	// Location is the shop's time zone, for customers whose zone is
	// unknown (default UTC).
	Location *time.Location
	// Recommender tunes the item-to-item model.
	Recommender RecommenderConfig
	// Clock tells the time for Observe and Recommend (default real).
	Clock clock.Clock
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Recommendation is a product to show someone, with its catalog facts.
type Recommendation struct {
	ProductID string  `json:"product_id"`
	Title     string  `json:"title,omitempty"`
	URL       string  `json:"url,omitempty"`
	ImageURL  string  `json:"image_url,omitempty"`
	Price     int64   `json:"price"` // minor units
	Currency  string  `json:"currency,omitempty"`
	Score     float64 `json:"score"`
}

// fitted is what a refit learned; it is replaced whole, never mutated.
type fitted struct {
	bgnbd      *BGNBD
	gg         *GammaGamma
	replenish  map[string]ReplenishInterval
	thresholds SegmentThresholds
	shopHours  Histogram
	bestHour   map[string]int // profile id → local hour
}

// Engine runs the models over a store: Refit fits them on the history and
// writes scores, segments and derived records; Observe keeps the
// recommendations and engagement scores current between refits. It is
// safe for concurrent use.
type Engine struct {
	store storage.Store
	opts  Options
	log   *slog.Logger

	mu     sync.RWMutex
	rec    *Recommender
	fit    *fitted
	report Report
}

// New returns an engine over store. Until the first Refit it recommends
// from what Observe has seen and has no churn, value or send-time model.
func New(store storage.Store, opts Options) *Engine {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Config.InactiveAfter <= 0 {
		opts.Config.InactiveAfter = config.Duration(90 * 24 * time.Hour)
	}
	if opts.Config.InactivePAlive <= 0 {
		opts.Config.InactivePAlive = 0.3
	}
	if opts.Config.ReplenishLead <= 0 {
		opts.Config.ReplenishLead = config.Duration(3 * 24 * time.Hour)
	}
	return &Engine{store: store, opts: opts, log: opts.Logger, rec: NewRecommender(opts.Recommender), fit: &fitted{}}
}

// Report returns the last refit's report.
func (e *Engine) Report() Report {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.report
}

// location is the profile's zone, else the shop's.
func (e *Engine) location(p storage.Profile) *time.Location {
	if p.Timezone != "" {
		if loc, err := time.LoadLocation(p.Timezone); err == nil {
			return loc
		}
	}
	return e.opts.Location
}

// history is one profile's records up to the refit's as-of time.
type history struct {
	profile storage.Profile
	records []behavior.Record
	orders  []behavior.Record
	rfm     RFM
	buyer   bool
}

// Refit fits every model on the records before now, scores every profile,
// appends the derived records that are due and returns the report. It
// holds each profile's records in memory for the duration: the design
// target is a small shop (a few hundred thousand records).
func (e *Engine) Refit(ctx context.Context, now time.Time) (Report, error) {
	return e.refit(ctx, now, true)
}

// Analyze fits every model as of now and returns the report without
// writing scores, segments or derived records and without replacing the
// live models: `nudge insights --as-of DATE` on a past date.
func (e *Engine) Analyze(ctx context.Context, now time.Time) (Report, error) {
	return e.refit(ctx, now, false)
}

func (e *Engine) refit(ctx context.Context, now time.Time, write bool) (Report, error) {
	var profiles []storage.Profile
	if err := e.store.ScanProfiles(ctx, func(p storage.Profile) error {
		profiles = append(profiles, p)
		return nil
	}); err != nil {
		return Report{}, fmt.Errorf("insights: scan profiles: %w", err)
	}
	rep := Report{AsOf: now, Profiles: len(profiles), Segments: map[string]int{}, Derived: map[string]int{}}
	rec := NewRecommender(e.opts.Recommender)
	repl := NewReplenishModel()
	fit := &fitted{bestHour: map[string]int{}}
	hists := make([]history, 0, len(profiles))
	personal := map[string]*Histogram{}
	var rfms []RFM
	var spends []SpendObservation
	for _, p := range profiles {
		recs, err := e.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Until: now})
		if errors.Is(err, storage.ErrNotFound) {
			continue // forgotten or merged meanwhile
		}
		if err != nil {
			return Report{}, fmt.Errorf("insights: records of %s: %w", p.ID, err)
		}
		rep.Records += len(recs)
		loc := e.location(p)
		h := history{profile: p, records: recs, orders: Orders(recs)}
		var ps []Purchase
		for _, o := range h.orders {
			ps = append(ps, Purchase{At: o.At, Value: float64(orderValue(o))})
			for _, pid := range behavior.ProductIDs(o.Items) {
				repl.Add(p.ID, pid, o.At)
			}
		}
		h.rfm, h.buyer = Summarize(ps, now, loc)
		if h.buyer {
			rfms = append(rfms, h.rfm)
			spends = append(spends, SpendObservation{Frequency: h.rfm.Frequency, Mean: h.rfm.MonetaryValue})
			rep.Customers++
		}
		var hist Histogram
		for _, r := range recs {
			rec.Add(r, p.ID)
			if sendTimeSignal(r) {
				hist[HourOfWeek(r.At, loc)]++
				fit.shopHours[HourOfWeek(r.At, loc)]++
			}
		}
		if hist.Total() > 0 {
			personal[p.ID] = &hist
		}
		// The full history is read again, one profile at a time, when the
		// profile is scored: holding every profile's records at once made
		// the refit of a 1M-record store take 570 MB of heap.
		h.records = nil
		hists = append(hists, h)
	}

	if b, err := FitBGNBD(rfms); err == nil {
		fit.bgnbd, rep.BGNBD, rep.BGNBDStatus = &b, &b, ModelStatus{Confidence: ConfidenceOK}
	} else {
		rep.BGNBDStatus = ModelStatus{Confidence: ConfidenceLow, Note: err.Error()}
	}
	if g, err := FitGammaGamma(spends); err == nil {
		fit.gg, rep.GammaGamma, rep.GammaGammaStatus = &g, &g, ModelStatus{Confidence: ConfidenceOK}
	} else {
		rep.GammaGammaStatus = ModelStatus{Confidence: ConfidenceLow, Note: err.Error()}
	}
	fit.replenish = map[string]ReplenishInterval{}
	for i, ri := range repl.Intervals() {
		fit.replenish[ri.ProductID] = ri
		if i < 10 {
			rep.Replenishment = append(rep.Replenishment, e.reportInterval(ctx, ri))
		}
	}
	if hour, ok := fit.shopHours.BestHour(); ok {
		rep.ShopBestHour, rep.SendTimeEvents = &hour, int(fit.shopHours.Total())
	}
	for id, h := range personal {
		s := h.Shrunk(&fit.shopHours)
		if hour, ok := s.BestHour(); ok {
			fit.bestHour[id] = hour
		}
	}
	var segIn []SegmentInput
	for _, h := range hists {
		segIn = append(segIn, segmentInput(h, now, fit))
	}
	fit.thresholds = FitSegmentThresholds(segIn)
	rep.SegmentThresholds = fit.thresholds
	rep.Recommendation = RecommendationStats{Products: rec.Products(), Coverage: rec.Coverage()}

	if !write {
		for _, h := range hists {
			if err := e.loadRecords(ctx, &h, now); err != nil {
				return Report{}, err
			}
			_, seg := e.score(h, now, fit)
			rep.Segments[seg]++
		}
		return rep, nil
	}
	e.mu.Lock()
	e.rec, e.fit = rec, fit
	e.mu.Unlock()

	var derived []behavior.Record
	for _, h := range hists {
		if err := e.loadRecords(ctx, &h, now); err != nil {
			return Report{}, err
		}
		scores, seg := e.score(h, now, fit)
		if err := e.store.SetScores(ctx, h.profile.ID, scores, seg, now); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			return Report{}, fmt.Errorf("insights: set scores of %s: %w", h.profile.ID, err)
		}
		rep.Scored++
		rep.Segments[seg]++
		derived = append(derived, e.derive(ctx, h, now, fit, scores)...)
	}
	for _, d := range derived {
		res, err := e.store.Append(ctx, storage.Ingest{Records: []behavior.Record{d}})
		if err != nil {
			return Report{}, fmt.Errorf("insights: append %s: %w", d.Kind, err)
		}
		if len(res.New) > 0 {
			rep.Derived[string(d.Kind)]++
		}
	}
	e.mu.Lock()
	e.report = rep
	e.mu.Unlock()
	return rep, nil
}

// loadRecords reads one profile's records before now into h for scoring;
// a profile forgotten meanwhile scores on no records.
func (e *Engine) loadRecords(ctx context.Context, h *history, now time.Time) error {
	recs, err := e.store.RecordsByProfile(ctx, h.profile.ID, storage.RecordQuery{Until: now})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("insights: records of %s: %w", h.profile.ID, err)
	}
	h.records = recs
	return nil
}

// sendTimeSignal reports whether a record shows when the person reads and
// acts: clicks, opens by a person (not a privacy proxy), orders.
func sendTimeSignal(r behavior.Record) bool {
	switch r.Kind {
	case behavior.EmailClicked, behavior.OrderPlaced:
		return true
	case behavior.EmailOpened:
		return r.Ref(behavior.RefMachineOpen) != "true"
	}
	return false
}

func (e *Engine) reportInterval(ctx context.Context, ri ReplenishInterval) ReportInterval {
	days := func(d time.Duration) float64 { return d.Hours() / 24 }
	out := ReportInterval{ProductID: ri.ProductID, MedianDays: days(ri.Median), P25Days: days(ri.P25), P75Days: days(ri.P75), Samples: ri.Samples, Buyers: ri.Buyers}
	if p, err := e.store.Product(ctx, ri.ProductID); err == nil {
		out.Title = p.Title
	}
	return out
}

func segmentInput(h history, now time.Time, fit *fitted) SegmentInput {
	in := SegmentInput{Orders: len(h.orders)}
	if !h.buyer {
		in.Orders = 0
		return in
	}
	in.Orders = h.rfm.Frequency + 1
	in.SinceFirst = time.Duration(h.rfm.T * 7 * 24 * float64(time.Hour))
	in.SinceLast = time.Duration((h.rfm.T - h.rfm.Recency) * 7 * 24 * float64(time.Hour))
	for _, o := range h.orders {
		in.Spend += float64(orderValue(o))
	}
	if fit.bgnbd != nil {
		in.PAlive, in.HasPAlive = fit.bgnbd.PAlive(h.rfm), true
	}
	return in
}

// score computes one profile's scores and segment; keys without enough
// data are left out.
func (e *Engine) score(h history, now time.Time, fit *fitted) (map[string]float64, string) {
	scores := map[string]float64{}
	if b := fit.bgnbd; b != nil && h.buyer {
		pa := b.PAlive(h.rfm)
		scores[ScorePAlive] = pa
		scores[ScoreChurnRisk] = 1 - pa
		scores[ScoreExpectedOrders] = b.ExpectedPurchases(90.0/7, h.rfm)
		if w, ok := b.WeeksToNextPurchase(h.rfm, 104); ok {
			scores[ScoreNextOrderAt] = float64(now.Add(time.Duration(w * 7 * 24 * float64(time.Hour))).Unix())
		}
		if g := fit.gg; g != nil {
			if v, ok := CLV(b.BGNBDParams, g.GammaGammaParams, h.rfm, 365.0/7); ok {
				scores[ScoreCLV] = v
			}
		}
	}
	if hour, ok := fit.bestHour[h.profile.ID]; ok {
		scores[ScoreBestHour] = float64(hour)
	}
	if s, ok := EngagementScores(h.records, now); ok {
		scores[ScoreEngagement], scores[ScoreIntent] = s.Engagement, s.Intent
	}
	return scores, fit.thresholds.Segment(segmentInput(h, now, fit))
}

// BestHour is the profile's best send hour (0–23, their local time) for
// `wait_until_best_hour`: their own, shrunk toward the shop's, else the
// shop-wide one. ok is false before any engagement data.
func (e *Engine) BestHour(profileID string) (int, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if h, ok := e.fit.bestHour[profileID]; ok {
		return h, true
	}
	return e.fit.shopHours.BestHour()
}
