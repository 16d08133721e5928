package insights

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/storage"
)

func openStore(t *testing.T, clk clock.Clock) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "nudge.db"), storage.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func appendAll(t *testing.T, db storage.Store, recs ...behavior.Record) {
	t.Helper()
	if _, err := db.Append(context.Background(), storage.Ingest{Records: recs}); err != nil {
		t.Fatal(err)
	}
}

func stockOf(n int64) *int64 { return &n }

// seedShop writes a small shop's history: a catalog, 80 customers
// ordering coffee every ~30 days with grinder/filters bundles, email
// clicks in the evening, and one prospect who only viewed.
func seedShop(t *testing.T, db storage.Store, start time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	catalog := []behavior.Item{
		{ProductID: "coffee", Title: "Coffee beans", URL: "https://shop/coffee", Price: 1500, Available: stockOf(100)},
		{ProductID: "grinder", Title: "Grinder", URL: "https://shop/grinder", Price: 9000, Available: stockOf(5)},
		{ProductID: "filters", Title: "Filters", URL: "https://shop/filters", Price: 500, Available: stockOf(50)},
		{ProductID: "kettle", Title: "Kettle", URL: "https://shop/kettle", Price: 6000, Available: stockOf(0)},
		{ProductID: "mug", Title: "Mug", URL: "https://shop/mug", Price: 1200, Available: stockOf(9)},
	}
	for _, it := range catalog {
		appendAll(t, db, behavior.Record{ID: "cat-" + it.ProductID, Kind: behavior.ProductUpdated, Source: "shopify", Store: "main", At: start, Currency: "USD", Items: []behavior.Item{it}})
	}
	for c := range 80 {
		email := fmt.Sprintf("c%02d@example.com", c)
		at := start.Add(time.Duration(rng.IntN(60*24)) * time.Hour)
		n := 1 + rng.IntN(6)
		for k := range n {
			items := []behavior.Item{{ProductID: "coffee", Price: 1500, Quantity: 1}}
			if k == 0 && c%2 == 0 {
				items = append(items, behavior.Item{ProductID: "grinder", Price: 9000, Quantity: 1}, behavior.Item{ProductID: "filters", Price: 500, Quantity: 1})
			}
			if k == 0 && c%3 == 0 {
				items = append(items, behavior.Item{ProductID: "kettle", Price: 6000, Quantity: 1}, behavior.Item{ProductID: "mug", Price: 1200, Quantity: 1})
			}
			appendAll(t, db, behavior.Record{ID: fmt.Sprintf("o-%d-%d", c, k), Kind: behavior.OrderPlaced, Source: "shopify", Store: "main",
				At: at, Email: email, Value: behavior.ItemValue(items), Currency: "USD", Items: items})
			click := behavior.Record{ID: fmt.Sprintf("clk-%d-%d", c, k), Kind: behavior.EmailClicked, Source: "sendgrid",
				At: time.Date(at.Year(), at.Month(), at.Day(), 19, 10, 0, 0, time.UTC), Email: email}
			appendAll(t, db, click)
			at = at.Add(time.Duration(28+rng.IntN(5)) * 24 * time.Hour)
		}
	}
	appendAll(t, db, behavior.Record{ID: "v1", Kind: behavior.ProductViewed, Source: "web", At: start.Add(100 * 24 * time.Hour),
		AnonymousID: "anon-1", Items: []behavior.Item{{ProductID: "grinder"}}})
}

// TestEngineEndToEnd runs a refit over the real bbolt store and checks
// scores, segments, the report, derived records (stable on re-run),
// recommendations, best hour and incremental observation.
func TestEngineEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, clk, now := seededShop(t)
	e := New(db, Options{Clock: clk, Config: config.Insights{ReplenishLead: config.Duration(40 * 24 * time.Hour)}})

	dry, err := e.Analyze(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := db.ProfileByEmail(ctx, "c00@example.com"); p.Scores != nil || p.Segment != "" || dry.Scored != 0 || len(dry.Derived) != 0 {
		t.Fatalf("Analyze wrote: scores %v segment %q report %+v", p.Scores, p.Segment, dry.Derived)
	}
	rep, err := e.Refit(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if dry.BGNBD == nil || *dry.BGNBD != *rep.BGNBD || dry.Segments[SegmentProspect] != 1 {
		t.Fatalf("Analyze and Refit disagree: %+v vs %+v", dry.BGNBD, rep.BGNBD)
	}
	if rep.BGNBD == nil || rep.BGNBD.Customers != 80 || rep.BGNBDStatus.Confidence != ConfidenceOK {
		t.Fatalf("bg/nbd %+v %+v", rep.BGNBD, rep.BGNBDStatus)
	}
	if rep.GammaGamma == nil {
		t.Fatalf("gamma-gamma: %+v", rep.GammaGammaStatus)
	}
	if len(rep.Replenishment) == 0 || rep.Replenishment[0].ProductID != "coffee" || rep.Replenishment[0].MedianDays < 28 || rep.Replenishment[0].MedianDays > 33 {
		t.Fatalf("replenishment %+v", rep.Replenishment)
	}
	if rep.ShopBestHour == nil || *rep.ShopBestHour != 19 {
		t.Fatalf("shop best hour %v", rep.ShopBestHour)
	}
	total := 0
	for _, n := range rep.Segments {
		total += n
	}
	if total != rep.Profiles || rep.Segments[SegmentProspect] != 1 {
		t.Fatalf("segments %v over %d profiles", rep.Segments, rep.Profiles)
	}
	if rep.Derived["replenishment_due"] == 0 || rep.Derived["became_inactive"] == 0 {
		t.Fatalf("derived %+v, want replenishment_due and became_inactive", rep.Derived)
	}
	// Derived records land on the customer's own profile.
	derivedOn := 0
	_ = db.ScanProfiles(ctx, func(p storage.Profile) error {
		rs, err := db.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Kinds: []behavior.Kind{behavior.ReplenishmentDue, behavior.BecameInactive}})
		if err != nil {
			return err
		}
		derivedOn += len(rs)
		return nil
	})
	if derivedOn != rep.Derived["replenishment_due"]+rep.Derived["became_inactive"] {
		t.Fatalf("%d derived records on profiles, report says %+v", derivedOn, rep.Derived)
	}

	p, err := db.ProfileByEmail(ctx, "c00@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{ScorePAlive, ScoreExpectedOrders, ScoreCLV, ScoreChurnRisk, ScoreBestHour, ScoreEngagement, ScoreIntent} {
		if _, ok := p.Scores[k]; !ok {
			t.Errorf("score %s missing: %v", k, p.Scores)
		}
	}
	if pa := p.Scores[ScorePAlive]; pa < 0 || pa > 1 || p.Scores[ScoreChurnRisk] != 1-pa {
		t.Errorf("p_alive %v churn %v", pa, p.Scores[ScoreChurnRisk])
	}
	if p.Segment == "" || p.Scores[ScoreBestHour] != 19 {
		t.Errorf("segment %q best hour %v", p.Segment, p.Scores[ScoreBestHour])
	}
	if h, ok := e.BestHour(p.ID); !ok || h != 19 {
		t.Errorf("BestHour = %d, %v", h, ok)
	}
	if h, ok := e.BestHour("nobody"); !ok || h != 19 {
		t.Errorf("fallback BestHour = %d, %v", h, ok)
	}
	anon, err := db.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentAnonymous, Value: "anon-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := anon.Scores[ScorePAlive]; ok || anon.Segment != SegmentProspect {
		t.Errorf("a prospect got churn scores %v / segment %q", anon.Scores, anon.Segment)
	}

	// A second refit appends nothing new.
	rep2, err := e.Refit(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Derived["replenishment_due"] != 0 || rep2.Derived["became_inactive"] != 0 {
		t.Fatalf("re-run derived again: %+v", rep2.Derived)
	}

	// c01 bought coffee only (odd, not divisible by 3): grinder and
	// filters come first; coffee stays (replenishable); the kettle is out
	// of stock.
	c1, err := db.ProfileByEmail(ctx, "c01@example.com")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := e.Recommend(ctx, c1.ID, 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ProductID)
		if r.Title == "" || r.URL == "" || r.Price == 0 {
			t.Errorf("recommendation without catalog facts: %+v", r)
		}
	}
	if slices.Contains(got, "kettle") || !slices.Contains(got, "grinder") || !slices.Contains(got, "coffee") {
		t.Fatalf("recommendations %v", got)
	}
	// c00 bought the grinder: not again (not replenishable).
	recs, err = e.Recommend(ctx, p.ID, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ProductID == "grinder" || r.ProductID == "kettle" {
			t.Fatalf("recommended %s to c00: %+v", r.ProductID, recs)
		}
	}
	if recs, err := e.Recommend(ctx, "", 2); err != nil || len(recs) != 2 {
		t.Fatalf("new visitor: %+v, %v", recs, err)
	}

	// Observe: a cart add raises intent right away.
	cart := behavior.Record{ID: "cart-1", Kind: behavior.CartUpdated, Source: "web", At: now, Email: "c01@example.com",
		Items: []behavior.Item{{ProductID: "mug", Price: 1200, Quantity: 1}}}
	appendAll(t, db, cart)
	before := c1.Scores[ScoreIntent]
	if err := e.Observe(ctx, cart, c1); err != nil {
		t.Fatal(err)
	}
	c1, _ = db.ProfileByEmail(ctx, "c01@example.com")
	if !(c1.Scores[ScoreIntent] > before) || c1.Scores[ScoreBestHour] != 19 {
		t.Fatalf("intent %v → %v, best hour %v", before, c1.Scores[ScoreIntent], c1.Scores[ScoreBestHour])
	}

	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BG/NBD       r=", "Gamma-Gamma  p=", "coffee", "segments:", "prospect=1"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, buf.String())
		}
	}
	js, err := json.Marshal(rep)
	if err != nil || !strings.Contains(string(js), `"bgnbd":{"r":`) {
		t.Fatalf("json %s, %v", js, err)
	}
}

// TestEngineNotEnoughData checks that a shop with three customers gets a
// low-confidence report and no invented churn or value scores.
func TestEngineNotEnoughData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db := openStore(t, clock.NewFake(now))
	for i := range 3 {
		appendAll(t, db, order(fmt.Sprint("o", i), fmt.Sprint("c", i), now.Add(-time.Duration(i+1)*24*time.Hour), "a"))
	}
	e := New(db, Options{Clock: clock.NewFake(now)})
	rep, err := e.Refit(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BGNBD != nil || rep.BGNBDStatus.Confidence != ConfidenceLow || rep.GammaGamma != nil || rep.GammaGammaStatus.Confidence != ConfidenceLow {
		t.Fatalf("report %+v", rep)
	}
	p, err := db.ProfileByEmail(ctx, "c0@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{ScorePAlive, ScoreCLV, ScoreExpectedOrders, ScoreChurnRisk, ScoreNextOrderAt} {
		if v, ok := p.Scores[k]; ok {
			t.Errorf("invented %s = %v", k, v)
		}
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil || !strings.Contains(buf.String(), "confidence: low") {
		t.Fatalf("text %q, %v", buf.String(), err)
	}
}

// A product known only from tracking calls (whose write key is public)
// is never recommended, however popular someone makes it.
func TestRecommendationsSkipUnverifiedProducts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, clk, now := seededShop(t)
	for i := range 300 {
		appendAll(t, db, behavior.Record{ID: fmt.Sprintf("scam-%d", i), Kind: behavior.CheckoutStarted, Source: behavior.SourceWeb,
			At: now.Add(-time.Duration(i) * time.Minute), AnonymousID: fmt.Sprintf("bot-%d", i%40),
			Items: []behavior.Item{{ProductID: "scam", Title: "Claim your refund", URL: "https://evil.example", Price: 100, Quantity: 1}}})
	}
	e := New(db, Options{Clock: clk})
	if _, err := e.Refit(ctx, now); err != nil {
		t.Fatal(err)
	}
	recs, err := e.Recommend(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("no recommendations at all")
	}
	for _, r := range recs {
		if r.ProductID == "scam" {
			t.Fatalf("recommended the unverified product: %+v", recs)
		}
	}
}
