package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openTestDB opens a store in a temp dir with a fake clock at t0.
func openTestDB(t testing.TB, opts Options) (*DB, string) {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = clock.NewFake(t0)
	}
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func rec(id string, kind behavior.Kind, at time.Time, email string) behavior.Record {
	return behavior.Record{ID: id, Kind: kind, Source: "test", At: at, Email: email}
}

func mustAppend(t testing.TB, db *DB, recs ...behavior.Record) AppendResult {
	t.Helper()
	res, err := db.Append(context.Background(), Ingest{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func countRecords(t testing.TB, db *DB) int {
	t.Helper()
	n := 0
	if err := db.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(behavior.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func recordIDs(recs []behavior.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func TestAppendDedupe(t *testing.T) {
	t.Parallel()
	order := rec("o1", behavior.OrderPlaced, t0, "Ann@Example.com")
	order.Value = 5400
	tests := []struct {
		name    string
		ingests [][]behavior.Record
		// concurrent runs every ingest at once.
		concurrent bool
		wantNew    int
		wantDup    int
	}{
		{"same ingest twice", [][]behavior.Record{{order}, {order}}, false, 1, 1},
		{"duplicate inside one ingest", [][]behavior.Record{{order, order}}, false, 1, 1},
		{"five concurrent", [][]behavior.Record{{order}, {order}, {order}, {order}, {order}}, true, 1, 4},
		{"content id", [][]behavior.Record{{rec("", behavior.PageViewed, t0, "a@b.co")}, {rec("", behavior.PageViewed, t0.In(time.FixedZone("x", 3600)), "A@B.CO")}}, false, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{})
			var mu sync.Mutex
			gotNew, gotDup := 0, 0
			run := func(recs []behavior.Record) {
				res, err := db.Append(context.Background(), Ingest{Records: recs})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				gotNew += len(res.New)
				gotDup += res.Duplicates
				mu.Unlock()
			}
			var wg sync.WaitGroup
			for _, in := range tc.ingests {
				if tc.concurrent {
					wg.Go(func() { run(in) })
				} else {
					run(in)
				}
			}
			wg.Wait()
			if gotNew != tc.wantNew || gotDup != tc.wantDup {
				t.Errorf("new=%d dup=%d, want %d %d", gotNew, gotDup, tc.wantNew, tc.wantDup)
			}
			if n := countRecords(t, db); n != tc.wantNew {
				t.Errorf("stored %d records, want %d", n, tc.wantNew)
			}
			jobs, err := db.CountJobs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if jobs[JobScheduled] != tc.wantNew {
				t.Errorf("%d evaluate jobs, want %d", jobs[JobScheduled], tc.wantNew)
			}
		})
	}
}

// TestAppendSurvivesBatchRetry runs Appends in group commits with callers
// whose function fails: bbolt then rolls the batch back and runs the other
// functions again, so each Append's result must come from the run that
// committed (all new, no phantom duplicates).
func TestAppendSurvivesBatchRetry(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{MaxBatchDelay: 20 * time.Millisecond})
	ctx := context.Background()
	const n = 40
	var wg sync.WaitGroup
	results := make([]AppendResult, n)
	for i := range n {
		wg.Go(func() {
			r := rec(fmt.Sprintf("r%d", i), behavior.OrderPlaced, t0, fmt.Sprintf("u%d@example.com", i%5))
			r.Value = 100
			res, err := db.Append(ctx, Ingest{Records: []behavior.Record{r}})
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
		if i%10 == 0 {
			wg.Go(func() {
				// A job without kind fails inside the shared transaction.
				if _, err := db.EnqueueJobs(ctx, JobSpec{}); !errors.Is(err, ErrInvalid) {
					t.Errorf("bad enqueue: %v", err)
				}
			})
		}
	}
	wg.Wait()
	for i, res := range results {
		if len(res.New) != 1 || res.Duplicates != 0 || res.Profiles[res.New[0].ID] == "" {
			t.Errorf("append %d: %+v", i, res)
		}
	}
	if c := countRecords(t, db); c != n {
		t.Errorf("%d records", c)
	}
	for u := range 5 {
		p, err := db.ProfileByEmail(ctx, fmt.Sprintf("u%d@example.com", u))
		if err != nil || p.OrdersCount != n/5 || p.TotalSpent != int64(100*n/5) {
			t.Errorf("profile u%d: orders %d spent %d, %v", u, p.OrdersCount, p.TotalSpent, err)
		}
	}
	if jobs, _ := db.CountJobs(ctx); jobs[JobScheduled] != n {
		t.Errorf("%d evaluate jobs, want %d", jobs[JobScheduled], n)
	}
}

func TestAppendFillsAndKeepsInputIntact(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	in := []behavior.Record{{Kind: behavior.CheckoutStarted, Source: "shopify", At: t0.In(time.FixedZone("CET", 3600)), Email: " Ann@Example.COM "}}
	before := in[0]
	res := mustAppend(t, db, in...)
	if !reflect.DeepEqual(in[0], before) {
		t.Errorf("caller's record changed: %+v", in[0])
	}
	if len(res.New) != 1 {
		t.Fatalf("new = %d", len(res.New))
	}
	got, err := db.Record(context.Background(), res.New[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "ann@example.com" || got.At.Location() != time.UTC || !got.At.Equal(t0) || !got.ReceivedAt.Equal(t0) || got.ID == "" {
		t.Errorf("stored %+v", got)
	}
	if res.Profiles[got.ID] == "" {
		t.Errorf("no profile in result")
	}
	if _, err := db.Record(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing record: %v", err)
	}
}

func TestAppendInvalidStoresNothing(t *testing.T) {
	t.Parallel()
	good := rec("good", behavior.PageViewed, t0, "ann@example.com")
	tests := []struct {
		name string
		bad  behavior.Record
		want string
	}{
		{"unknown kind", rec("b", "bogus", t0, "a@example.com"), "unknown kind"},
		{"zero time", rec("b", behavior.PageViewed, time.Time{}, "a@example.com"), "no time (at)"},
		{"no identity", rec("b", behavior.PageViewed, t0, ""), "no identity"},
		{"bad email", rec("b", behavior.PageViewed, t0, "not an email"), "not an address"},
		{"email without domain", rec("b", behavior.PageViewed, t0, "ann@"), "not an address"},
		{"two at signs", rec("b", behavior.PageViewed, t0, "ann@x@example.com"), "not an address"},
		{"long id", rec(strings.Repeat("x", 201), behavior.PageViewed, t0, "a@example.com"), "id of 201 bytes"},
		{"not encodable", func() behavior.Record {
			r := rec("b", behavior.PageViewed, t0, "a@example.com")
			r.Seconds = math.NaN()
			return r
		}(), "unsupported value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{KeepRaw: true})
			_, err := db.Append(context.Background(), Ingest{
				Delivery: &Delivery{ID: "d1", Source: "test", Body: []byte("{}")},
				Records:  []behavior.Record{good, tc.bad},
			})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "record 1") {
				t.Fatalf("err = %v, want ErrInvalid naming record 1 and %q", err, tc.want)
			}
			if n := countRecords(t, db); n != 0 {
				t.Errorf("%d records stored", n)
			}
			if _, err := db.ProfileByEmail(context.Background(), "ann@example.com"); !errors.Is(err, ErrNotFound) {
				t.Errorf("profile stored: %v", err)
			}
			if _, err := db.Delivery(context.Background(), "d1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("delivery stored: %v", err)
			}
		})
	}
	t.Run("catalog update needs no identity", func(t *testing.T) {
		db, _ := openTestDB(t, Options{})
		mustAppend(t, db, rec("p", behavior.ProductUpdated, t0, ""))
	})
}

func TestAppendKeepsRawDelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		keepRaw bool
		id      string
	}{
		{"given id", true, "evt_1"},
		{"derived id", true, ""},
		{"not kept", false, "evt_1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{KeepRaw: tc.keepRaw})
			body := []byte("{\"email\":\"ann@example.com\",\n\"b\":\"\x00\xff\n\"}\n")
			res, err := db.Append(context.Background(), Ingest{
				Delivery: &Delivery{ID: tc.id, Source: "shopify", Topic: "orders/create", Body: body},
				Records:  []behavior.Record{rec("o1", behavior.OrderPlaced, t0, "ann@example.com")},
			})
			if err != nil {
				t.Fatal(err)
			}
			id := tc.id
			if id == "" {
				id = behavior.DeriveID("delivery", "shopify", "", "orders/create", string(body))
			}
			d, err := db.Delivery(context.Background(), id)
			if !tc.keepRaw {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("delivery kept without KeepRaw: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Body) != string(body) || d.ReceivedAt.IsZero() {
				t.Errorf("delivery %+v", d)
			}
			var sr storedRecord
			err = db.view(context.Background(), func(tx *bolt.Tx) error {
				_, err := getJSON(tx.Bucket(bucketRecords), []byte(res.New[0].ID), &sr)
				return err
			})
			if err != nil || sr.D != id || sr.P == "" {
				t.Errorf("envelope %+v, %v", sr, err)
			}
		})
	}
}

func TestDeliveryDecodesPlainJSON(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	want := Delivery{ID: "old", Source: "shopify", ReceivedAt: t0, Body: []byte("{}\n")}
	err := db.update(context.Background(), func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketDeliveries), []byte("old"), want)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Delivery(context.Background(), "old")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v", got, err)
	}
}

func TestAppendProfileFacts(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	o1 := rec("o1", behavior.OrderPlaced, t0, "ann@example.com")
	o1.Value, o1.Currency = 5000, "EUR"
	o1.Person = &behavior.Person{FirstName: "Ann", Timezone: "Europe/Berlin"}
	o2 := rec("o2", behavior.OrderPlaced, t0.Add(-48*time.Hour), "ann@example.com")
	o2.Value = 2000
	o2.Person = &behavior.Person{FirstName: "Annie", LastName: "Lee"}
	ref := rec("r1", behavior.OrderRefunded, t0.Add(time.Hour), "ann@example.com")
	ref.Value = 1500
	view := rec("v1", behavior.ProductViewed, t0.Add(2*time.Hour), "ann@example.com")
	mustAppend(t, db, o1, o2)
	mustAppend(t, db, ref, view)
	p, err := db.ProfileByEmail(ctx, "ANN@example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := struct {
		orders        int
		spent         int64
		first, last   time.Time
		cur, fn, ln   string
		views, placed int
	}{2, 5500, t0.Add(-48 * time.Hour), t0.Add(2 * time.Hour), "EUR", "Annie", "Lee", 1, 2}
	got := struct {
		orders        int
		spent         int64
		first, last   time.Time
		cur, fn, ln   string
		views, placed int
	}{p.OrdersCount, p.TotalSpent, p.FirstSeen, p.LastSeen, p.Currency, p.FirstName, p.LastName, p.Counts[behavior.ProductViewed], p.Counts[behavior.OrderPlaced]}
	if got != want {
		t.Errorf("facts %+v, want %+v", got, want)
	}
	if p.Timezone != "Europe/Berlin" || p.Email != "ann@example.com" || !p.LastAt[behavior.OrderPlaced].Equal(t0) {
		t.Errorf("profile %+v", p)
	}
	if p2, err := db.Profile(ctx, p.ID); err != nil || p2.ID != p.ID {
		t.Errorf("Profile(id) = %v, %v", p2.ID, err)
	}
	if p3, err := db.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentEmail, Value: "ann@example.com"}); err != nil || p3.ID != p.ID {
		t.Errorf("ProfileByIdentity = %v, %v", p3.ID, err)
	}
	if _, err := db.Profile(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestRecordsByProfileQuery(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	var recs []behavior.Record
	for i := range 10 {
		k := behavior.PageViewed
		if i%2 == 1 {
			k = behavior.ProductViewed
		}
		recs = append(recs, rec(fmt.Sprintf("r%d", i), k, t0.Add(time.Duration(i)*time.Hour), "ann@example.com"))
	}
	// An unrelated profile whose id sorts next to nothing in particular.
	recs = append(recs, rec("other", behavior.PageViewed, t0, "bob@example.com"))
	res := mustAppend(t, db, recs...)
	pid := res.Profiles["r0"]
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name string
		q    RecordQuery
		want []string
	}{
		{"all", RecordQuery{}, []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"}},
		{"since until", RecordQuery{Since: h(2), Until: h(5)}, []string{"r2", "r3", "r4"}},
		{"kinds", RecordQuery{Kinds: []behavior.Kind{behavior.ProductViewed}}, []string{"r1", "r3", "r5", "r7", "r9"}},
		{"limit", RecordQuery{Limit: 3}, []string{"r0", "r1", "r2"}},
		{"newest", RecordQuery{Newest: true, Limit: 3}, []string{"r9", "r8", "r7"}},
		{"newest until", RecordQuery{Newest: true, Until: h(5), Limit: 2}, []string{"r4", "r3"}},
		{"newest kinds since", RecordQuery{Newest: true, Since: h(4), Kinds: []behavior.Kind{behavior.PageViewed}}, []string{"r8", "r6", "r4"}},
		{"empty window", RecordQuery{Since: h(20)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.RecordsByProfile(context.Background(), pid, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if ids := recordIDs(got); !reflect.DeepEqual(ids, tc.want) && !(len(ids) == 0 && len(tc.want) == 0) {
				t.Errorf("got %v, want %v", ids, tc.want)
			}
		})
	}
	if got, err := db.RecordsByProfile(context.Background(), "unknown", RecordQuery{}); err != nil || len(got) != 0 {
		t.Errorf("unknown profile: %v, %v", got, err)
	}
}

func TestScanRecordsOrder(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	const n = 2500
	var recs []behavior.Record
	for i := range n {
		// Insert out of time order so the index, not insertion, orders them.
		at := t0.Add(time.Duration((i*7919)%n) * time.Second)
		recs = append(recs, rec(fmt.Sprintf("r%05d", i), behavior.PageViewed, at, fmt.Sprintf("u%d@example.com", i%50)))
	}
	for i := 0; i < n; i += 500 {
		mustAppend(t, db, recs[i:i+500]...)
	}
	var prev time.Time
	count := 0
	err := db.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(r behavior.Record) error {
		if r.At.Before(prev) {
			t.Fatalf("record %s at %s after %s", r.ID, r.At, prev)
		}
		prev = r.At
		count++
		return nil
	})
	if err != nil || count != n {
		t.Fatalf("scanned %d, %v", count, err)
	}
	count = 0
	err = db.ScanRecords(context.Background(), t0.Add(1000*time.Second), t0.Add(2200*time.Second), func(r behavior.Record) error {
		count++
		return nil
	})
	if err != nil || count != 1200 {
		t.Errorf("window scanned %d, %v", count, err)
	}
	stop := errors.New("stop")
	count = 0
	err = db.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(behavior.Record) error {
		count++
		if count == 1500 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || count != 1500 {
		t.Errorf("stop: %d, %v", count, err)
	}
}

func TestAppendEnqueuesEvaluateJobs(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	res := mustAppend(t, db, rec("a", behavior.PageViewed, t0, "ann@example.com"), rec("b", behavior.CartUpdated, t0, "bob@example.com"))
	mustAppend(t, db, rec("a", behavior.PageViewed, t0, "ann@example.com")) // duplicate: no job
	jobs, err := db.ClaimDueJobs(ctx, t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("claimed %d jobs, want 2", len(jobs))
	}
	for i, j := range jobs {
		var p EvaluatePayload
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			t.Fatal(err)
		}
		want := EvaluatePayload{RecordID: res.New[i].ID, ProfileID: res.Profiles[res.New[i].ID]}
		if j.Kind != JobEvaluate || j.UniqueKey != "" || p != want {
			t.Errorf("job %d: %+v payload %+v, want %+v", i, j, p, want)
		}
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	db, err := Open(path, Options{Clock: clock.NewFake(t0), KeepRaw: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "d1", Body: []byte("x")}, Records: []behavior.Record{rec("a", behavior.OrderPlaced, t0, "ann@example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Record(ctx, "a"); err != nil {
		t.Error(err)
	}
	if _, err := db.Delivery(ctx, "d1"); err != nil {
		t.Error(err)
	}
	p, err := db.ProfileByEmail(ctx, "ann@example.com")
	if err != nil || p.ID != res.Profiles["a"] || p.OrdersCount != 1 {
		t.Errorf("profile %+v, %v", p, err)
	}
	if recs, err := db.RecordsByProfile(ctx, p.ID, RecordQuery{}); err != nil || len(recs) != 1 {
		t.Errorf("records %v, %v", recs, err)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

func TestClosedStoreSaysErrClosed(t *testing.T) {
	t.Parallel()
	db, err := Open(filepath.Join(t.TempDir(), "c.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := db.Record(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record on a closed store: %v, want ErrClosed", err)
	}
}

// Imports of history ask for no evaluation of records too old to start a
// journey; the records themselves are stored as usual.
func TestEvaluateSinceSkipsOldRecords(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	old := rec("old", behavior.OrderPlaced, t0.Add(-48*time.Hour), "a@example.com")
	recent := rec("recent", behavior.OrderPlaced, t0, "a@example.com")
	res, err := db.Append(ctx, Ingest{Records: []behavior.Record{old, recent}, EvaluateSince: t0.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.New) != 2 {
		t.Fatalf("stored %d records, want 2", len(res.New))
	}
	jobs, err := db.ClaimDueJobs(ctx, t0.Add(24*365*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || !strings.Contains(string(jobs[0].Payload), `"recent"`) {
		t.Fatalf("evaluate jobs: %+v, want one for the recent record", jobs)
	}
}

// TimeOrderedDeliveryID: ids of later deliveries sort after earlier ones
// (so they append at the deliveries bucket's end), keep a content id's
// shape, and differ for different content at the same instant.
func TestTimeOrderedDeliveryID(t *testing.T) {
	a := behavior.DeriveID("delivery", "shopify/main", "a")
	b := behavior.DeriveID("delivery", "shopify/main", "b")
	ids := []string{
		TimeOrderedDeliveryID(t0, b),
		TimeOrderedDeliveryID(t0.Add(time.Nanosecond), a),
		TimeOrderedDeliveryID(t0.Add(time.Millisecond), b),
		TimeOrderedDeliveryID(t0.Add(48*time.Hour), a),
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids not in arrival order: %v", ids)
	}
	for _, id := range ids {
		if len(id) != len(a) || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("id %q is not %d hex digits", id, len(a))
		}
	}
	if TimeOrderedDeliveryID(t0, a) == TimeOrderedDeliveryID(t0, b) {
		t.Error("different content at one instant got one id")
	}
}

// A brief read carries exactly the fields RecordQuery.Brief names, equal to
// a whole read's, for every kind of record, and filters like a whole one.
func TestRecordsByProfileBrief(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	view := rec("view", behavior.PageViewed, t0, "ann@example.com")
	view.URL, view.Seconds = "https://example.com/p/trail", 42.5
	view.Attrs = map[string]any{"title": "Trail Runner", "referrer": "https://search.example"}
	order := rec("order", behavior.OrderPlaced, t0.Add(time.Hour), "ann@example.com")
	order.Source, order.Store, order.Value, order.Currency = "shopify", "main", 10800, "EUR"
	order.Items = []behavior.Item{{ProductID: "p1", VariantID: "v1", Title: "Trail Runner", Quantity: 2, Price: 5400}}
	order.SetRef(behavior.RefOrderID, "1001")
	order.Person = &behavior.Person{FirstName: "Ann", Country: "DE"}
	res := mustAppend(t, db, view, order)
	pid := res.Profiles["view"]
	ctx := context.Background()
	whole, err := db.RecordsByProfile(ctx, pid, RecordQuery{})
	if err != nil {
		t.Fatal(err)
	}
	brief, err := db.RecordsByProfile(ctx, pid, RecordQuery{Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 2 || len(brief) != 2 {
		t.Fatalf("%d whole, %d brief records", len(whole), len(brief))
	}
	for i, w := range whole {
		want := behavior.Record{ID: w.ID, Kind: w.Kind, Source: w.Source, Store: w.Store, At: w.At, ReceivedAt: w.ReceivedAt,
			Value: w.Value, Currency: w.Currency, Items: w.Items, Seconds: w.Seconds, Refs: w.Refs}
		if !reflect.DeepEqual(brief[i], want) {
			t.Errorf("brief %+v\nwant  %+v", brief[i], want)
		}
	}
	if brief[1].Ref(behavior.RefOrderID) != "1001" || brief[1].Items[0].Price != 5400 || brief[0].Seconds != 42.5 || brief[0].ReceivedAt.IsZero() ||
		brief[0].Attrs != nil || brief[0].URL != "" || brief[1].Person != nil {
		t.Errorf("brief order %+v", brief[1])
	}
	orders, err := db.RecordsByProfile(ctx, pid, RecordQuery{Brief: true, Kinds: []behavior.Kind{behavior.OrderPlaced}})
	if err != nil || len(orders) != 1 || orders[0].ID != "order" {
		t.Errorf("brief orders: %v, %v", recordIDs(orders), err)
	}
}

// BenchmarkRecordsOfLoyalCustomer: every email's recommendations read the
// profile's newest 500 records, and exit checks look for a few kinds
// among them; a loyal customer's are mostly tracked page views.
func BenchmarkRecordsOfLoyalCustomer(b *testing.B) {
	ctx := context.Background()
	db, err := Open(filepath.Join(b.TempDir(), FileName), Options{Clock: clock.NewFake(t0), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var recs []behavior.Record
	for i := range 500 {
		r := rec(fmt.Sprintf("r%03d", i), behavior.PageViewed, t0.Add(time.Duration(i)*time.Hour), "loyal@example.com")
		r.URL = fmt.Sprintf("https://example.com/p/%d", i%40)
		r.Attrs = map[string]any{"title": "A product page", "referrer": "https://search.example/?q=shoes", "seconds": 42}
		r.Items = []behavior.Item{{ProductID: fmt.Sprintf("p%d", i%40), Title: "A product", Price: 5400}}
		if i%50 == 0 {
			r.Kind = behavior.OrderPlaced
			r.SetRef(behavior.RefOrderID, fmt.Sprint(i))
		}
		recs = append(recs, r)
	}
	pid := mustAppend(b, db, recs...).Profiles["r000"]
	for _, c := range []struct {
		name string
		q    RecordQuery
	}{
		{"whole", RecordQuery{Limit: 500, Newest: true}},
		{"brief", RecordQuery{Limit: 500, Newest: true, Brief: true}},
		{"orders", RecordQuery{Kinds: []behavior.Kind{behavior.OrderPlaced}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.RecordsByProfile(ctx, pid, c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// storedKind reads the kind of every record as it is stored, whatever its
// id holds, and declines any other layout.
func TestStoredKind(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"r1", `a"b`, `back\slash`, `\"`, `x","kind":"order_placed`, "ünïcode\u2028", "<&>", ""} {
		r := behavior.Record{ID: id, Kind: behavior.CartUpdated, At: t0}
		encoded, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range [][]byte{encoded, nil} {
			raw, err := encodeStoredRecord(r, enc, "p1", "d1")
			if err != nil {
				t.Fatal(err)
			}
			if k, ok := storedKind(raw); !ok || k != behavior.CartUpdated {
				t.Errorf("id %q: storedKind(%s) = %q, %v", id, raw, k, ok)
			}
		}
	}
	for _, raw := range []string{`{"r":{"kind":"cart_updated","id":"r1"}}`, `{"p":"p1","r":{"id":"r1","kind":"x"}}`, `{"r":{"id":"r1`, `{"r":{"id":"r1","kind":"a\"b"}}`, ``} {
		if k, ok := storedKind([]byte(raw)); ok {
			t.Errorf("storedKind(%s) = %q, want a refusal", raw, k)
		}
	}
}

// FuzzStoredKind: for any id and kind the encoder writes, the kind read
// from the front of the stored JSON is the kind decoding finds.
func FuzzStoredKind(f *testing.F) {
	f.Add("r1", "order_placed")
	f.Add(`a"b\`, "page_viewed")
	f.Fuzz(func(t *testing.T, id, kind string) {
		r := behavior.Record{ID: id, Kind: behavior.Kind(kind), At: t0}
		raw, err := encodeStoredRecord(r, nil, "", "")
		if err != nil {
			return
		}
		var rk recordKind
		if err := json.Unmarshal(raw, &rk); err != nil {
			return
		}
		if k, ok := storedKind(raw); ok && k != rk.R.Kind {
			t.Errorf("storedKind %q, decoded %q, from %s", k, rk.R.Kind, raw)
		}
	})
}
