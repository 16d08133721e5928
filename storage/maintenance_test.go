package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
)

func TestPrune(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cutoff    time.Time
		wantGone  int
		wantLeft  []string
		wantDeliv map[string]bool // delivery id → still there
	}{
		{"nothing before", t0.Add(-time.Hour), 0, []string{"d0", "d1", "d2", "d3"}, map[string]bool{"del-d0": true, "del-d3": true}},
		{"some", t0.Add(90 * time.Minute), 2, []string{"d2", "d3"}, map[string]bool{"del-d0": false, "del-d3": true}},
		{"all", t0.Add(24 * time.Hour), 4, nil, map[string]bool{"del-d0": false, "del-d3": false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(t0)
			db, _ := openTestDB(t, Options{KeepRaw: true, Clock: clk})
			ctx := context.Background()
			var pid string
			for i := range 4 {
				r := rec(fmt.Sprintf("d%d", i), behavior.ProductViewed, t0.Add(time.Duration(i)*time.Hour), "ann@example.com")
				r.Items = []behavior.Item{{ProductID: fmt.Sprintf("p%d", i)}}
				clk.Set(r.At) // received when it occurred
				res, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "del-" + r.ID, Body: []byte("x")}, Records: []behavior.Record{r}})
				if err != nil {
					t.Fatal(err)
				}
				pid = res.Profiles[r.ID]
			}
			clk.Set(t0.Add(48 * time.Hour))
			n, err := db.Prune(ctx, tc.cutoff)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.wantGone {
				t.Errorf("pruned %d, want %d", n, tc.wantGone)
			}
			recs, err := db.RecordsByProfile(ctx, pid, RecordQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if got := recordIDs(recs); fmt.Sprint(got) != fmt.Sprint(tc.wantLeft) && !(len(got) == 0 && len(tc.wantLeft) == 0) {
				t.Errorf("left %v, want %v", got, tc.wantLeft)
			}
			if c := countRecords(t, db); c != len(tc.wantLeft) {
				t.Errorf("scan finds %d", c)
			}
			for id, want := range tc.wantDeliv {
				_, err := db.Delivery(ctx, id)
				if got := err == nil; got != want {
					t.Errorf("delivery %s present=%v, want %v (%v)", id, got, want, err)
				}
			}
			ids, _ := db.ProfilesByProduct(ctx, "p0", nil, time.Time{})
			if (len(ids) == 1) != (tc.cutoff.Before(t0)) {
				t.Errorf("product view of a pruned record: %v", ids)
			}
			p, err := db.Profile(ctx, pid)
			if err != nil || p.Counts[behavior.ProductViewed] != 4 {
				t.Errorf("profile facts changed: %+v %v", p.Counts, err)
			}
			if err := db.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPruneKeepsRecentBackfill: history imported today that happened
// years ago stays for the retention after its import (the audit found a
// default 400-day retention deleting a CDNOW backfill at the next start),
// however many old records lie before it in time order.
func TestPruneKeepsRecentBackfill(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	db, _ := openTestDB(t, Options{Clock: clk})
	ctx := context.Background()
	old := t0.AddDate(-3, 0, 0)
	// Received long ago, occurred long ago: pruned. Interleaved in time
	// with the backfill, and more than one scan and chunk of them, so
	// the scan must page past what it keeps.
	var live, backfill []behavior.Record
	for i := range 2*pruneScan + 10 {
		at := old.Add(time.Duration(i) * time.Minute)
		if i%3 == 0 {
			live = append(live, rec(fmt.Sprintf("live%d", i), behavior.OrderPlaced, at, fmt.Sprintf("c%d@example.com", i%50)))
		} else {
			backfill = append(backfill, rec(fmt.Sprintf("imp%d", i), behavior.OrderPlaced, at, fmt.Sprintf("c%d@example.com", i%50)))
		}
	}
	clk.Set(old.Add(time.Hour))
	if _, err := db.Append(ctx, Ingest{Records: live}); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0) // the import: today
	if _, err := db.Append(ctx, Ingest{Records: backfill}); err != nil {
		t.Fatal(err)
	}
	n, err := db.Prune(ctx, t0.AddDate(0, 0, -400))
	if err != nil {
		t.Fatal(err)
	}
	if n != len(live) {
		t.Errorf("pruned %d, want the %d received long ago", n, len(live))
	}
	if c := countRecords(t, db); c != len(backfill) {
		t.Errorf("%d records left, want the backfill's %d", c, len(backfill))
	}
	// Re-importing the backfill is all duplicates.
	res, err := db.Append(ctx, Ingest{Records: backfill})
	if err != nil || res.Duplicates != len(backfill) {
		t.Errorf("re-import: %d duplicates of %d (%v)", res.Duplicates, len(backfill), err)
	}
	// 400 days after the import it goes too.
	if n, err := db.Prune(ctx, t0.Add(time.Hour)); err != nil || n != len(backfill) {
		t.Errorf("later prune removed %d of %d (%v)", n, len(backfill), err)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

// TestPruneMessages: retention drops the rendered messages of sends
// settled before the cutoff (sent, dead, unknown, held, skipped) and
// keeps the sends themselves; messages of sends that may still be
// delivered (pending, sending, retrying), and of sends updated after the
// cutoff, stay. More than one chunk of old sends, so the walk pages.
func TestPruneMessages(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	db, _ := openTestDB(t, Options{Clock: clk})
	ctx := context.Background()
	msg := MessageJSON(`{"to":{"email":"ann@example.com"},"template_data":{"customer":{"first_name":"Ann"}}}`)
	kept := map[string]bool{} // send id → its message must stay
	put := func(id, status string, updated time.Time, keep bool) {
		t.Helper()
		clk.Set(updated)
		if _, _, err := db.CreateSend(ctx, Send{ID: id, ProfileID: "p1", Status: status, Message: msg}); err != nil {
			t.Fatal(err)
		}
		kept[id] = keep
	}
	old, recent := t0, t0.Add(48*time.Hour)
	for i := range pruneChunk + 5 {
		put(fmt.Sprintf("old-sent-%04d", i), SendSent, old.Add(time.Duration(i)*time.Second), false)
	}
	for _, st := range []string{SendDead, SendUnknown, SendHeld, SendSkipped} {
		put("old-"+st, st, old, false)
	}
	for _, st := range []string{SendPending, SendSending, SendRetrying} {
		put("old-"+st, st, old, true)
	}
	put("recent-sent", SendSent, recent, true)
	// Settled long ago, then opened after the cutoff: its last update is
	// recent, so its message stays.
	put("old-then-opened", SendSent, old, true)
	s, err := db.Send(ctx, "old-then-opened")
	if err != nil {
		t.Fatal(err)
	}
	s.Engagement = map[string]int{"opened": 1}
	clk.Set(recent)
	if err := db.UpdateSend(ctx, s); err != nil {
		t.Fatal(err)
	}

	if _, err := db.Prune(ctx, t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for id, want := range kept {
		got, err := db.Send(ctx, id)
		if err != nil {
			t.Fatalf("send %s: %v (sends stay; only their messages go)", id, err)
		}
		if has := len(got.Message) > 0; has != want {
			t.Errorf("send %s (%s): message kept = %v, want %v", id, got.Status, has, want)
		}
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

func TestPruneJobUniqueKeys(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	db, _ := openTestDB(t, Options{Clock: clk})
	ctx := context.Background()
	uniqueKeys := func() map[string]bool {
		out := map[string]bool{}
		_ = db.view(ctx, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketJobUnique).ForEach(func(k, _ []byte) error { out[string(k)] = true; return nil })
		})
		return out
	}
	finish := func() {
		jobs, err := db.ClaimDueJobs(ctx, clk.Now(), 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if err := db.FinishJob(ctx, j.ID, JobOutcome{State: JobCompleted}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.EnqueueJobs(ctx, JobSpec{Kind: "x", UniqueKey: "old-done"}, JobSpec{Kind: "x", UniqueKey: "old-pending", DueAt: t0.Add(1000 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	finish()
	clk.Set(t0.Add(24 * time.Hour))
	if _, err := db.Prune(ctx, t0.Add(12*time.Hour)); err != nil { // leaves the first mark at t0+24h
		t.Fatal(err)
	}
	if k := uniqueKeys(); !k["old-done"] || !k["old-pending"] {
		t.Fatalf("first prune dropped keys: %v", k)
	}
	if _, err := db.EnqueueJobs(ctx, JobSpec{Kind: "x", UniqueKey: "new-done"}); err != nil {
		t.Fatal(err)
	}
	finish()
	clk.Set(t0.Add(72 * time.Hour))
	if _, err := db.Prune(ctx, t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	k := uniqueKeys()
	if k["old-done"] || !k["old-pending"] || !k["new-done"] {
		t.Errorf("keys after prune: %v (want old-done gone, the pending job's and the newer key kept)", k)
	}
}

func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	for i := range 200 {
		mustAppend(t, db, rec(fmt.Sprintf("r%d", i), behavior.PageViewed, t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("u%d@example.com", i%20)))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Append(ctx, Ingest{Records: []behavior.Record{rec(fmt.Sprintf("w%d", i), behavior.PageViewed, t0, "w@example.com")}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	out := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Backup(ctx, f)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Size() != n {
		t.Errorf("wrote %d, file has %d", n, fi.Size())
	}
	bk, err := Open(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	if err := bk.Check(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r0", "r199"} {
		if _, err := bk.Record(ctx, id); err != nil {
			t.Errorf("backup lacks %s: %v", id, err)
		}
	}
	if p, err := bk.ProfileByEmail(ctx, "u3@example.com"); err != nil || p.Counts[behavior.PageViewed] != 10 {
		t.Errorf("backup profile %+v %v", p.Counts, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Backup(cctx, f); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled backup: %v", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	v := rec("v", behavior.ProductViewed, t0, "ann@example.com")
	v.Items = []behavior.Item{{ProductID: "p1"}}
	if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "d", Body: []byte("x")}, Records: []behavior.Record{v, rec("u", behavior.Unsubscribed, t0, "bob@example.com")}}); err != nil {
		t.Fatal(err)
	}
	s, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Records: 2, Profiles: 2, Products: 1, Suppressions: 1, Deliveries: 1, FileBytes: s.FileBytes}
	if s != want || s.FileBytes <= 0 {
		t.Errorf("stats %+v, want %+v", s, want)
	}
}

// TestRecByTimeLayouts checks the time index in both of its layouts: new
// entries sort a second's records by arrival (sources stamp to the
// second, and by id they landed on random leaves), entries written in the
// old layout (occurred-at | id, no value) still scan, forget and prune.
func TestRecByTimeLayouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewFake(t0)
	db, _ := openTestDB(t, Options{Clock: clk})
	// Four records stamped with the same second, arriving in the order
	// of ids that do not sort that way.
	ids := []string{"zz", "aa", "mm", "\x00bb"}
	emails := []string{"ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"}
	for i, id := range ids {
		clk.Set(t0.Add(time.Duration(i) * time.Millisecond))
		mustAppend(t, db, rec(id, behavior.CheckoutStarted, t0, emails[i]))
	}
	scanned := func() []string {
		var got []string
		if err := db.ScanRecords(ctx, time.Time{}, time.Time{}, func(r behavior.Record) error {
			got = append(got, r.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := fmt.Sprintf("%q", scanned()); got != fmt.Sprintf("%q", ids) {
		t.Fatalf("a second's records scan as %s, want arrival order %q", got, ids)
	}

	// Rewrite two entries as an earlier version stored them.
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecByTime)
		for i, id := range []string{"aa", "\x00bb"} {
			received := t0.Add(time.Duration([]int{1, 3}[i]) * time.Millisecond)
			if b.Get(recByTimeKey(t0, received, id)) == nil {
				return fmt.Errorf("no entry for %q", id)
			}
			if err := b.Delete(recByTimeKey(t0, received, id)); err != nil {
				return err
			}
			if err := b.Put(legacyRecByTimeKey(t0, id), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := scanned(); len(got) != 4 {
		t.Fatalf("scan with both layouts finds %q", got)
	}
	entries := func() int {
		n := 0
		_ = db.bolt.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketRecByTime).Stats().KeyN
			return nil
		})
		return n
	}

	// Forget removes a legacy entry and a new one.
	for _, email := range []string{"bob@example.com", "ann@example.com"} {
		p, err := db.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentEmail, Value: email})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Forget(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	// (Within the second a legacy entry sorts before new ones.)
	if got, n := fmt.Sprintf("%q", scanned()), entries(); got != fmt.Sprintf("%q", []string{"\x00bb", "mm"}) || n != 2 {
		t.Fatalf("after forget: scan %s, %d index entries", got, n)
	}

	// Prune removes the rest, of either layout.
	clk.Set(t0.Add(48 * time.Hour))
	pruned, err := db.Prune(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if pruned != 2 || entries() != 0 || countRecords(t, db) != 0 {
		t.Fatalf("pruned %d, %d index entries and %d records left", pruned, entries(), countRecords(t, db))
	}
}
