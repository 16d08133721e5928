package insights

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

// readCounter counts the reads a refit makes; it hides ReleaseMapped.
type readCounter struct {
	storage.Store
	scans, reads atomic.Int64
}

func (c *readCounter) ScanProfiles(ctx context.Context, fn func(storage.Profile) error) error {
	c.scans.Add(1)
	return c.Store.ScanProfiles(ctx, fn)
}

func (c *readCounter) RecordsByProfile(ctx context.Context, id string, q storage.RecordQuery) ([]behavior.Record, error) {
	c.reads.Add(1)
	return c.Store.RecordsByProfile(ctx, id, q)
}

// releaseCounter is the bbolt store, counting ReleaseMapped calls.
type releaseCounter struct {
	*storage.DB
	n atomic.Int64
}

func (c *releaseCounter) ReleaseMapped(ctx context.Context) error {
	c.n.Add(1)
	return c.DB.ReleaseMapped(ctx)
}

// noRelease is a store whose mapped pages the engine cannot release.
type noRelease struct{ storage.Store }

// seededShop is seedShop written with the clock an hour before now, so
// every record was received before a refit as of now.
func seededShop(t *testing.T) (*storage.DB, *clock.Fake, time.Time) {
	t.Helper()
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	now := start.Add(200 * 24 * time.Hour)
	clk := clock.NewFake(now.Add(-time.Hour))
	db := openStore(t, clk)
	seedShop(t, db, start)
	clk.Set(now)
	return db, clk, now
}

func reportJSON(t *testing.T, r Report) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNextRefitReusesFreshFit: a refit saves its fit; an engine started
// later (a restart) restores it without reading a single profile or
// record while it is younger than refit_every, and then reports,
// recommends and picks send hours as the refitted engine did. A stale fit,
// or one made with other options, is not reused: the refit is due at once.
func TestNextRefitReusesFreshFit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, clk, now := seededShop(t)
	e := New(db, Options{Clock: clk})
	rep, err := e.Refit(ctx, now)
	if err != nil {
		t.Fatal(err)
	}

	later := now.Add(time.Hour)
	clk.Set(later)
	cs := &readCounter{Store: db}
	e2 := New(cs, Options{Clock: clk})
	wait, err := e2.NextRefit(ctx, later, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if wait != 23*time.Hour {
		t.Fatalf("next refit in %v, want 23h (the saved fit is an hour old)", wait)
	}
	if n, m := cs.scans.Load(), cs.reads.Load(); n != 0 || m != 0 {
		t.Fatalf("restoring scanned profiles %d times and read records %d times", n, m)
	}
	if got, want := reportJSON(t, e2.Report()), reportJSON(t, rep); got != want {
		t.Fatalf("restored report\n%s\nwant\n%s", got, want)
	}
	if !reflect.DeepEqual(e2.rec.snapshot(), e.rec.snapshot()) {
		t.Fatal("restored recommendation model differs")
	}
	for _, email := range []string{"c00@example.com", "c01@example.com", "c07@example.com"} {
		p, err := db.ProfileByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		r1, err := e.Recommend(ctx, p.ID, 4)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := e2.Recommend(ctx, p.ID, 4)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r1, r2) {
			t.Errorf("%s: recommendations %+v after restore, %+v before", email, r2, r1)
		}
		h1, ok1 := e.BestHourOf(p)
		h2, ok2 := e2.BestHourOf(p)
		if h1 != h2 || ok1 != ok2 || !ok1 {
			t.Errorf("%s: best hour %d,%v after restore, %d,%v before", email, h2, ok2, h1, ok1)
		}
	}
	if h, ok := e2.BestHourOf(storage.Profile{}); !ok || h != *rep.ShopBestHour {
		t.Errorf("shop-wide best hour after restore %d,%v, want %d", h, ok, *rep.ShopBestHour)
	}

	// Stale: older than refit_every.
	e3 := New(cs, Options{Clock: clk})
	if wait, err := e3.NextRefit(ctx, now.Add(25*time.Hour), 24*time.Hour); err != nil || wait != 0 {
		t.Fatalf("stale fit: next refit in %v (%v), want now", wait, err)
	}
	if !e3.Report().AsOf.IsZero() {
		t.Fatalf("a stale fit was restored: %v", e3.Report().AsOf)
	}
	// Fitted in another time zone: purchase days and hours differ.
	e4 := New(cs, Options{Clock: clk, Location: time.FixedZone("UTC+5", 5*3600)})
	if wait, err := e4.NextRefit(ctx, later, 24*time.Hour); err != nil || wait != 0 || !e4.Report().AsOf.IsZero() {
		t.Fatalf("fit of another zone: next refit in %v (%v), report as of %v", wait, err, e4.Report().AsOf)
	}
	// No fit saved yet.
	e5 := New(openStore(t, clk), Options{Clock: clk})
	if wait, err := e5.NextRefit(ctx, later, 24*time.Hour); err != nil || wait != 0 {
		t.Fatalf("empty store: next refit in %v (%v), want now", wait, err)
	}
}

// TestRefitUnchangedByRelease refits two identical shops, one releasing
// the store's mapped pages after every profile it reads and one never, and
// checks that the reports, the models and every profile's scores agree.
func TestRefitUnchangedByRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db1, clk1, now := seededShop(t)
	db2, clk2, _ := seededShop(t)
	rc := &releaseCounter{DB: db2}
	e1 := New(noRelease{db1}, Options{Clock: clk1})
	e2 := New(rc, Options{Clock: clk2, ReleaseEvery: 1})
	rep1, err := e1.Refit(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := e2.Refit(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if rc.n.Load() < 2*int64(rep2.Profiles) {
		t.Fatalf("%d releases over two passes of %d profiles, want one after each profile read", rc.n.Load(), rep2.Profiles)
	}
	if a, b := reportJSON(t, rep1), reportJSON(t, rep2); a != b {
		t.Fatalf("reports differ:\n%s\n%s", a, b)
	}
	if !reflect.DeepEqual(e1.rec.snapshot(), e2.rec.snapshot()) || !reflect.DeepEqual(e1.fit.replenish, e2.fit.replenish) || e1.fit.shopHours != e2.fit.shopHours {
		t.Fatal("models differ")
	}
	scores := func(db *storage.DB) map[string]storage.Profile {
		out := map[string]storage.Profile{}
		err := db.ScanProfiles(ctx, func(p storage.Profile) error {
			key := p.Email
			if key == "" {
				key = p.Identities[0].Value
			}
			out[key] = storage.Profile{Scores: p.Scores, Segment: p.Segment}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	s1, s2 := scores(db1), scores(db2)
	if len(s1) != rep1.Profiles || !reflect.DeepEqual(s1, s2) {
		t.Fatalf("profile scores differ:\n%v\n%v", s1, s2)
	}
}

// TestObserveAfterRefitMatchesFullModel checks the recommendation model of
// an engine whose fit was restored (no profile context, no record ids)
// against the model the refit used to keep in memory: every record added
// in refit order with every profile's context and every id retained. A
// new record observed for a profile seeds its context from the records
// the refit read, so both models learn exactly the same; a record the
// refit read, observed again, changes neither.
func TestObserveAfterRefitMatchesFullModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, clk, now := seededShop(t)
	if _, err := New(db, Options{Clock: clk}).Refit(ctx, now); err != nil {
		t.Fatal(err)
	}
	e := New(db, Options{Clock: clk})
	if _, err := e.NextRefit(ctx, now.Add(time.Minute), 24*time.Hour); err != nil || e.Report().AsOf.IsZero() {
		t.Fatalf("not restored: %v", err)
	}

	full := NewRecommender(RecommenderConfig{})
	err := db.ScanProfiles(ctx, func(p storage.Profile) error {
		recs, err := db.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Until: now})
		for _, r := range recs {
			full.Add(r, p.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.rec.snapshot(), full.snapshot()) {
		t.Fatal("restored model differs from the full one before any observation")
	}

	c1, err := db.ProfileByEmail(ctx, "c01@example.com")
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(now.Add(time.Minute))
	appendAll(t, db, behavior.Record{ID: "cart-new", Kind: behavior.CartUpdated, Source: "web", At: now.Add(time.Minute), Email: "c01@example.com",
		Items: []behavior.Item{{ProductID: "mug", Price: 1200, Quantity: 1}, {ProductID: "filters", Price: 500, Quantity: 1}}})
	cart, err := db.Record(ctx, "cart-new")
	if err != nil {
		t.Fatal(err)
	}
	old, err := db.Record(ctx, "o-1-0") // c01's first order, read by the refit
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []behavior.Record{old, cart, cart} {
		if err := e.Observe(ctx, r, c1); err != nil {
			t.Fatal(err)
		}
		full.Add(r, c1.ID)
		if !reflect.DeepEqual(e.rec.snapshot(), full.snapshot()) {
			t.Fatalf("after observing %s the models differ", r.ID)
		}
	}
	if got, want := e.rec.recent[c1.ID], full.recent[c1.ID]; !reflect.DeepEqual(got, want) {
		t.Fatalf("c01's context %+v, want %+v", got, want)
	}
}

// TestReplenishAddCustomerMatchesAdd: learning a customer's purchases at
// once gives the intervals that adding them one by one gives.
func TestReplenishAddCustomerMatchesAdd(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	one, whole, mixed := NewReplenishModel(), NewReplenishModel(), NewReplenishModel()
	for c := range 60 {
		customer := string(rune('a'+c%26)) + string(rune('a'+c/26))
		bought := map[string][]time.Time{}
		for range 1 + rng.IntN(8) {
			p := []string{"coffee", "filters", "tea"}[rng.IntN(3)]
			at := t0.Add(time.Duration(rng.IntN(400*24)) * time.Hour)
			bought[p] = append(bought[p], at)
			one.Add(customer, p, at)
			if c%2 == 0 {
				mixed.Add(customer, p, at)
			}
		}
		whole.AddCustomer(customer, bought)
		if c%2 == 1 {
			mixed.AddCustomer(customer, bought)
		}
	}
	want := one.Intervals()
	if len(want) == 0 {
		t.Fatal("no intervals: the test data is too thin")
	}
	if got := whole.Intervals(); !reflect.DeepEqual(got, want) {
		t.Fatalf("AddCustomer: %+v\nwant %+v", got, want)
	}
	if got := mixed.Intervals(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Add and AddCustomer: %+v\nwant %+v", got, want)
	}
}
