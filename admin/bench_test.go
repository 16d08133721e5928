package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

// Benchmark shop size.
const (
	benchProfiles = 100_000
	benchRecords  = 1_000_000
	benchJourneys = 10_000
	benchDays     = 60
	benchBatch    = 5_000
)

// benchShop is a seeded store: 100k profiles and 1M records spread over
// 60 days (so about 17k fall in the overview's 24 h window), 10k journeys
// with their sends across three rules, a tenth held out.
type benchShop struct {
	db     *storage.DB
	clk    *clock.Fake
	now    time.Time
	busy   string // a customer with many records, journeys and sends
	seeded time.Duration
}

func seedBenchShop(b *testing.B) *benchShop {
	b.Helper()
	start := time.Now()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	clk := clock.NewFake(now)
	db, err := storage.Open(filepath.Join(b.TempDir(), storage.FileName), storage.Options{Clock: clk, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	rng := rand.New(rand.NewPCG(1, 2))
	sources := []string{"web", "web", "web", "shopify", "shopify", "stripe", "sendgrid"}
	window := benchDays * 24 * time.Hour
	batch := make([]behavior.Record, 0, benchBatch)
	flush := func() {
		if _, err := db.Append(ctx, storage.Ingest{Records: batch}); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 0; i < benchRecords; i++ {
		// Profile 0 is busy: about a thousand records. It only takes
		// records after the first pass, so every profile exists.
		p := i % benchProfiles
		if i >= benchProfiles && i%1000 == 999 {
			p = 0
		}
		at := now.Add(-time.Duration(rng.Int64N(int64(window))))
		src := sources[rng.IntN(len(sources))]
		r := behavior.Record{ID: fmt.Sprintf("r%07d", i), Source: src, At: at, Email: email(p)}
		switch src {
		case "web":
			r.Kind, r.URL = behavior.ProductViewed, "https://example.com/products/p"+fmt.Sprint(i%500)
			r.Items = []behavior.Item{{ProductID: fmt.Sprintf("p%d", i%500), Title: "Product", Price: 1200}}
		case "shopify":
			r.Kind, r.Value, r.Currency, r.Store = behavior.CheckoutStarted, 5400, "USD", "main"
			if i%5 == 0 {
				r.Kind = behavior.OrderPlaced
			}
		case "stripe":
			r.Kind, r.Value, r.Currency = behavior.OrderPaid, 5400, "USD"
		default:
			r.Kind = behavior.EmailDelivered
		}
		batch = append(batch, r)
		if len(batch) == benchBatch {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	rules := []string{"cart-abandonment", "browse-abandonment", "winback"}
	for i := 0; i < benchJourneys; i++ {
		p := i * (benchProfiles / benchJourneys)
		if i%100 == 0 {
			p = 0
		}
		prof, err := db.ProfileByEmail(ctx, email(p))
		if err != nil {
			b.Fatal(err)
		}
		startAt := now.Add(-time.Duration(rng.Int64N(int64(30 * 24 * time.Hour))))
		j := storage.Journey{ID: fmt.Sprintf("j%05d", i), Rule: rules[i%len(rules)], ProfileID: prof.ID, Step: 1,
			Status: storage.JourneyCompleted, Holdout: i%10 == 0, StartedAt: startAt, UpdatedAt: startAt,
			Trace: []storage.TraceEntry{{At: startAt, Action: "started", Detail: "trigger matched"}, {At: startAt.Add(time.Hour), Step: 1, Action: "sent"}}}
		if err := db.PutJourney(ctx, j); err != nil {
			b.Fatal(err)
		}
		s := storage.Send{ID: "s" + j.ID, JourneyID: j.ID, Rule: j.Rule, Step: 1, ProfileID: prof.ID, Email: email(p), Provider: "log",
			Status: storage.SendSent, CreatedAt: startAt.Add(time.Hour), UpdatedAt: startAt.Add(time.Hour), SentAt: startAt.Add(time.Hour),
			Engagement: map[string]int{"delivered": 1}}
		switch {
		case j.Holdout:
			s.Status, s.SentAt, s.Engagement = storage.SendHeld, time.Time{}, nil
		case i%97 == 0:
			s.Status, s.SentAt, s.LastError = storage.SendDead, time.Time{}, "550 mailbox unavailable"
		case i%3 == 0:
			s.Engagement["opened"], s.Engagement["clicked"] = 1, 1
		}
		if _, _, err := db.CreateSend(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	st, err := db.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if st.Profiles != benchProfiles || st.Records != benchRecords {
		b.Fatalf("seeded %d profiles and %d records, want %d and %d", st.Profiles, st.Records, benchProfiles, benchRecords)
	}
	shop := &benchShop{db: db, clk: clk, now: now, busy: email(0), seeded: time.Since(start)}
	b.Logf("seeded %d profiles, %d records, %d journeys in %s (%d MB)", st.Profiles, st.Records, st.Journeys, shop.seeded.Round(time.Second), st.FileBytes>>20)
	return shop
}

func (s *benchShop) handler(b *testing.B) (http.Handler, *Admin) {
	b.Helper()
	a, err := New(Options{
		Store: s.db, Token: testToken, PublicURL: "http://127.0.0.1", Clock: s.clk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RuleStatsFunc: func(ctx context.Context) (map[string]RuleStats, error) {
			// What the sender does: one pass over the outbox.
			sends, err := s.db.ListSends(ctx, "", 0)
			out := map[string]RuleStats{}
			for _, sd := range sends {
				st := out[sd.Rule]
				st.Sent++
				out[sd.Rule] = st
			}
			return out, err
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	a.Register(r)
	return r, a
}

func benchGet(b *testing.B, h http.Handler, path string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK && w.Code != http.StatusSeeOther {
		b.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
	}
	return w.Body.Len()
}

// BenchmarkOverview100k renders the overview over 100k profiles and 1M
// records: "cold" recomputes every aggregate (what one request in 30 s
// pays), "warm" serves the cached aggregate (every other request).
func BenchmarkOverview100k(b *testing.B) {
	shop := seedBenchShop(b)
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			h, _ := shop.handler(b)
			b.StartTimer()
			b.SetBytes(int64(benchGet(b, h, "/admin/")))
		}
	})
	b.Run("warm", func(b *testing.B) {
		h, _ := shop.handler(b)
		benchGet(b, h, "/admin/")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.SetBytes(int64(benchGet(b, h, "/admin/")))
		}
	})
	b.Run("rules", func(b *testing.B) {
		h, _ := shop.handler(b)
		benchGet(b, h, "/admin/rules")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchGet(b, h, "/admin/rules")
		}
	})
}

// BenchmarkProfilePage renders customer pages in the same shop: a typical
// customer (ten records), the busiest one (a thousand records, a hundred
// journeys and sends; the timeline shows the newest 200) and a substring
// search that scans all 100k profiles.
func BenchmarkProfilePage(b *testing.B) {
	shop := seedBenchShop(b)
	h, _ := shop.handler(b)
	for _, tc := range []struct{ name, path string }{
		{"typical", "/admin/customers/" + url.PathEscape(email(4242))},
		{"busy", "/admin/customers/" + url.PathEscape(shop.busy)},
		{"search-exact", "/admin/customers?q=" + url.QueryEscape(email(99999))},
		{"search-scan", "/admin/customers?q=" + url.QueryEscape("c99999")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchGet(b, h, tc.path)
			}
		})
	}
}
