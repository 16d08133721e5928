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
	// ReleaseEvery is how many records a refit reads between two releases
	// of the store's memory-mapped pages (storage.MappedReleaser); default
	// 1024.
	ReleaseEvery int
}

// Recommendation is a product to show someone, with its catalog facts.
type Recommendation struct {
	// Title, URL and ImageURL are always present, "" when the catalog
	// does not know them: the profile API's shape (CONTRACT §3) names them.
	ProductID string  `json:"product_id"`
	Title     string  `json:"title"`
	URL       string  `json:"url"`
	ImageURL  string  `json:"image_url"`
	Price     int64   `json:"price"` // minor units
	Currency  string  `json:"currency,omitempty"`
	Score     float64 `json:"score"`
}

// fitted is what a refit learned; it is replaced whole, never mutated.
type fitted struct {
	// asOf is the refit's as-of time: the models hold every record that
	// occurred and was received before it (see learned).
	asOf       time.Time
	bgnbd      *BGNBD
	gg         *GammaGamma
	replenish  map[string]ReplenishInterval
	thresholds SegmentThresholds
	shopHours  Histogram
}

// learned reports whether the refit behind fit has read r: it read every
// record that occurred before its as-of time and was in the store when it
// got to the record's profile. A record received after the as-of time is
// taken as unread (one received during the refit may have been read: it
// then counts twice in the recommendation model until the next refit).
func (fit *fitted) learned(r behavior.Record) bool {
	return !fit.asOf.IsZero() && r.At.Before(fit.asOf) && !r.ReceivedAt.IsZero() && r.ReceivedAt.Before(fit.asOf)
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
	if z := p.Zone(); z != "" {
		if loc, err := time.LoadLocation(z); err == nil {
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
	// bestHour is the profile's own best send hour, when known (a refit
	// computes it; Observe keeps the stored one).
	bestHour    int
	hasBestHour bool
}

// newHistory summarizes one profile's records as of now.
func (e *Engine) newHistory(p storage.Profile, recs []behavior.Record, now time.Time) history {
	h := history{profile: p, records: recs, orders: Orders(recs)}
	var ps []Purchase
	for _, o := range h.orders {
		ps = append(ps, Purchase{At: o.At, Value: float64(orderValue(o))})
	}
	h.rfm, h.buyer = Summarize(ps, now, e.location(p))
	return h
}

// existedAt reports whether a profile has any history before now: a refit
// as of now leaves out profiles whose first record came later (created
// while it ran, or after a past as-of date).
func existedAt(p storage.Profile, now time.Time) bool {
	return p.FirstSeen.IsZero() || p.FirstSeen.Before(now)
}

// Refit fits every model on the records before now, scores every profile,
// appends the derived records that are due, saves the fit in the store
// (see Restore) and returns the report.
//
// Its memory does not grow with the history: it reads the store one
// profile at a time, twice — first to fit the models, keeping only a few
// numbers per customer (their RFM summary and spend), then to score each
// profile with the fitted models — and it writes scores and derived
// records in batches as it goes. Every Options.ReleaseEvery records it
// releases the store's memory-mapped pages it has read
// (storage.MappedReleaser), so that reading a 2 GB file does not leave the
// process 2 GB resident.
func (e *Engine) Refit(ctx context.Context, now time.Time) (Report, error) {
	return e.refit(ctx, now, true)
}

// Analyze fits every model as of now and returns the report without
// writing scores, segments or derived records and without replacing the
// live models: `nudge insights --as-of DATE` on a past date.
func (e *Engine) Analyze(ctx context.Context, now time.Time) (Report, error) {
	return e.refit(ctx, now, false)
}

// buyer is what the segment thresholds need of one customer.
type buyer struct {
	rfm   RFM
	spend float64
}

// Batch sizes of a refit's writes.
const (
	scoreBatch   = 500 // profiles per SetScoresBatch
	derivedBatch = 200 // derived records per Append
)

func (e *Engine) refit(ctx context.Context, now time.Time, write bool) (Report, error) {
	rel := e.newReleaser(ctx)
	defer rel.release()
	rep := Report{AsOf: now, Segments: map[string]int{}, Derived: map[string]int{}}
	rec := NewRecommender(e.opts.Recommender)
	repl := NewReplenishModel()
	fit := &fitted{asOf: now}
	var buyers []buyer

	// Pass 1: fit. Of each profile only its RFM summary and spend stay.
	err := e.store.ScanProfiles(ctx, func(p storage.Profile) error {
		if !existedAt(p, now) {
			return nil
		}
		rep.Profiles++
		recs, err := e.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Until: now, Brief: true})
		if errors.Is(err, storage.ErrNotFound) {
			return nil // forgotten or merged meanwhile
		}
		if err != nil {
			return fmt.Errorf("insights: records of %s: %w", p.ID, err)
		}
		rep.Records += len(recs)
		rel.read(len(recs))
		h := e.newHistory(p, recs, now)
		bought := map[string][]time.Time{}
		for _, o := range h.orders {
			for _, pid := range behavior.ProductIDs(o.Items) {
				bought[pid] = append(bought[pid], o.At)
			}
		}
		repl.AddCustomer(p.ID, bought)
		if h.buyer {
			buyers = append(buyers, buyer{rfm: h.rfm, spend: ordersValue(h.orders)})
			rep.Customers++
		}
		loc := e.location(p)
		for _, r := range recs {
			rec.learn(r, p.ID)
			if sendTimeSignal(r) {
				fit.shopHours[HourOfWeek(r.At, loc)]++
			}
		}
		rec.dropContext(p.ID)
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("insights: scan profiles: %w", err)
	}
	rel.release()

	rfms := make([]RFM, len(buyers))
	for i, b := range buyers {
		rfms[i] = b.rfm
	}
	if b, err := FitBGNBD(rfms); err == nil {
		fit.bgnbd, rep.BGNBD, rep.BGNBDStatus = &b, &b, ModelStatus{Confidence: ConfidenceOK}
	} else {
		rep.BGNBDStatus = ModelStatus{Confidence: ConfidenceLow, Note: err.Error()}
	}
	spends := make([]SpendObservation, len(buyers))
	for i, b := range buyers {
		spends[i] = SpendObservation{Frequency: b.rfm.Frequency, Mean: b.rfm.MonetaryValue}
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
	segIn := make([]SegmentInput, 0, len(buyers))
	for _, b := range buyers {
		segIn = append(segIn, buyerSegmentInput(b.rfm, b.spend, fit))
	}
	fit.thresholds = FitSegmentThresholds(segIn)
	buyers, repl = nil, nil // the pass-1 closure holds them
	rep.SegmentThresholds = fit.thresholds
	rep.Recommendation = RecommendationStats{Products: rec.Products(), Coverage: rec.Coverage()}

	if write {
		e.mu.Lock()
		e.rec, e.fit = rec, fit
		e.mu.Unlock()
	}

	// Pass 2: score each profile with the fitted models, writing scores
	// and derived records in batches.
	w := refitWriter{e: e, rep: &rep}
	err = e.store.ScanProfiles(ctx, func(p storage.Profile) error {
		if !existedAt(p, now) {
			return nil
		}
		recs, err := e.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Until: now, Brief: true})
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("insights: records of %s: %w", p.ID, err)
		}
		rel.read(len(recs))
		h := e.newHistory(p, recs, now)
		h.bestHour, h.hasBestHour = personalBestHour(recs, e.location(p), &fit.shopHours)
		scores, seg := e.score(h, now, fit)
		if !write {
			rep.Segments[seg]++
			return nil
		}
		return w.add(ctx, storage.ScoreUpdate{ProfileID: p.ID, Scores: scores, Segment: seg, At: now}, e.derive(ctx, h, now, fit, scores))
	})
	if err == nil && write {
		err = w.flush(ctx)
	}
	if err != nil {
		return Report{}, err
	}
	if !write {
		return rep, nil
	}
	e.mu.Lock()
	e.report = rep
	e.mu.Unlock()
	if err := e.save(ctx, rep, fit, rec); err != nil {
		// The fit is live; only the next start refits instead of reusing it.
		e.log.Warn("insights: fit not saved", "error", err)
	}
	return rep, nil
}

// refitWriter batches a refit's writes: scores (SetScoresBatch) and
// derived records (one Append per batch), counting what was written in
// the report.
type refitWriter struct {
	e       *Engine
	rep     *Report
	updates []storage.ScoreUpdate
	derived []behavior.Record
}

func (w *refitWriter) add(ctx context.Context, u storage.ScoreUpdate, derived []behavior.Record) error {
	w.updates = append(w.updates, u)
	w.derived = append(w.derived, derived...)
	if len(w.updates) >= scoreBatch || len(w.derived) >= derivedBatch {
		return w.flush(ctx)
	}
	return nil
}

func (w *refitWriter) flush(ctx context.Context) error {
	if len(w.updates) > 0 {
		done, err := w.e.store.SetScoresBatch(ctx, w.updates)
		if err != nil {
			return fmt.Errorf("insights: set scores: %w", err)
		}
		for i, ok := range done {
			if ok {
				w.rep.Scored++
				w.rep.Segments[w.updates[i].Segment]++
			}
		}
		w.updates = w.updates[:0]
	}
	if len(w.derived) > 0 {
		ours := make(map[string]bool, len(w.derived))
		for _, d := range w.derived {
			ours[d.ID] = true
		}
		res, err := w.e.store.Append(ctx, storage.Ingest{Records: w.derived})
		if err != nil {
			return fmt.Errorf("insights: append derived records: %w", err)
		}
		for _, r := range res.New {
			if ours[r.ID] {
				w.rep.Derived[string(r.Kind)]++
			}
		}
		w.derived = w.derived[:0]
	}
	return nil
}

// personalBestHour is a profile's best send hour from its own events
// shrunk toward the shop's; ok is false without events of its own.
func personalBestHour(recs []behavior.Record, loc *time.Location, shop *Histogram) (int, bool) {
	var hist Histogram
	for _, r := range recs {
		if sendTimeSignal(r) {
			hist[HourOfWeek(r.At, loc)]++
		}
	}
	if hist.Total() == 0 {
		return 0, false
	}
	s := hist.Shrunk(shop)
	return s.BestHour()
}

// ordersValue is the total value of orders.
func ordersValue(orders []behavior.Record) float64 {
	var v float64
	for _, o := range orders {
		v += float64(orderValue(o))
	}
	return v
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

func segmentInput(h history, fit *fitted) SegmentInput {
	if !h.buyer {
		return SegmentInput{}
	}
	return buyerSegmentInput(h.rfm, ordersValue(h.orders), fit)
}

// buyerSegmentInput is the segmentation input of a customer with at least
// one order.
func buyerSegmentInput(rfm RFM, spend float64, fit *fitted) SegmentInput {
	in := SegmentInput{
		Orders:     rfm.Frequency + 1,
		SinceFirst: time.Duration(rfm.T * 7 * 24 * float64(time.Hour)),
		SinceLast:  time.Duration((rfm.T - rfm.Recency) * 7 * 24 * float64(time.Hour)),
		Spend:      spend,
	}
	if fit.bgnbd != nil {
		in.PAlive, in.HasPAlive = fit.bgnbd.PAlive(rfm), true
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
	if h.hasBestHour {
		scores[ScoreBestHour] = float64(h.bestHour)
	}
	if s, ok := EngagementScores(h.records, now); ok {
		scores[ScoreEngagement], scores[ScoreIntent] = s.Engagement, s.Intent
	}
	return scores, fit.thresholds.Segment(segmentInput(h, fit))
}

// BestHour is the profile's best send hour (0–23, their local time) for
// `wait_until_best_hour`: their own, shrunk toward the shop's, else the
// shop-wide one. ok is false before any engagement data.
func (e *Engine) BestHour(profileID string) (int, bool) {
	p, err := e.store.Profile(context.Background(), profileID)
	if err != nil {
		p = storage.Profile{}
	}
	return e.BestHourOf(p)
}

// BestHourOf is BestHour for a profile at hand: its own best hour is the
// score the last refit wrote (ScoreBestHour), so the engine keeps no
// per-profile map in memory.
func (e *Engine) BestHourOf(p storage.Profile) (int, bool) {
	if h, ok := p.Scores[ScoreBestHour]; ok && h >= 0 && h < 24 {
		return int(h), true
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.fit.shopHours.BestHour()
}
