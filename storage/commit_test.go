package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// TestCommitStatsCountEveryCommit checks the group commit's totals against
// what was written: sequential appends are one commit each, concurrent
// ones share commits (fewer commits than writes, every write counted
// once), a write that fails its batch and re-runs solo is not counted,
// and every commit lands in exactly one duration bucket.
func TestCommitStatsCountEveryCommit(t *testing.T) {
	t.Parallel()
	for i, b := range CommitBounds() {
		if b <= 0 || (i > 0 && b <= CommitBounds()[i-1]) {
			t.Fatalf("CommitBounds %v: not positive and increasing", CommitBounds())
		}
	}
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	if s := db.CommitStats(); s.Commits != 0 || s.Writes != 0 || s.Pages != 0 || s.Seconds != 0 || s.WriteSeconds != 0 {
		t.Fatalf("fresh store: %+v", s)
	}

	for i := range 3 {
		mustAppend(t, db, rec(fmt.Sprintf("seq%d", i), behavior.ProductViewed, t0, "a@example.com"))
	}
	s := db.CommitStats()
	if s.Commits != 3 || s.Writes != 3 {
		t.Errorf("after 3 sequential appends: %d commits, %d writes; want 3, 3", s.Commits, s.Writes)
	}
	// Each commit rewrites at least the pages of the records, the time
	// index, the profile and the meta page's tree roots.
	if s.Pages < 3*3 {
		t.Errorf("after 3 appends: %d pages written", s.Pages)
	}
	if s.Seconds <= 0 {
		t.Errorf("after 3 commits: %v s", s.Seconds)
	}
	// Writing pages includes two fdatasyncs, never nothing; both parts
	// are parts of the whole.
	if s.WriteSeconds <= 0 || s.SpillSeconds < 0 || s.SpillSeconds+s.WriteSeconds > s.Seconds {
		t.Errorf("after 3 commits: spill %v s + write %v s of %v s", s.SpillSeconds, s.WriteSeconds, s.Seconds)
	}

	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := db.Append(ctx, Ingest{Records: []behavior.Record{rec(fmt.Sprintf("par%d", i), behavior.ProductViewed, t0, fmt.Sprintf("u%d@example.com", i))}}); err != nil {
				t.Error(err)
			}
		})
	}
	// Fails inside a shared transaction: the others commit without it and
	// it runs alone, outside the group commit.
	wg.Go(func() {
		if _, err := db.EnqueueJobs(ctx, JobSpec{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad enqueue: %v", err)
		}
	})
	wg.Wait()
	after := db.CommitStats()
	writes, commits := after.Writes-s.Writes, after.Commits-s.Commits
	if writes != n {
		t.Errorf("%d concurrent appends counted as %d writes", n, writes)
	}
	if commits == 0 || commits > n {
		t.Errorf("%d concurrent appends took %d commits", n, commits)
	}
	if after.Pages <= s.Pages || after.Seconds <= s.Seconds {
		t.Errorf("pages %d → %d, seconds %v → %v: not counted", s.Pages, after.Pages, s.Seconds, after.Seconds)
	}
	var inBuckets uint64
	for _, c := range after.Buckets {
		inBuckets += c
	}
	if inBuckets != after.Commits {
		t.Errorf("buckets hold %d commits, want %d (%v)", inBuckets, after.Commits, after.Buckets)
	}
}

// blockCommit starts a write that holds the writer until the returned
// release is called, so the calls queued meanwhile find commits running
// back to back; it returns once that write is running.
func blockCommit(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		done <- db.batch(context.Background(), func(*bolt.Tx) error {
			once.Do(func() { close(started) })
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("blocking write: %v", err)
		}
	}
}

// waitCommitState polls the committer until cond holds (under its lock).
func waitCommitState(t *testing.T, db *DB, what string, cond func(g *committer) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		db.commit.mu.Lock()
		ok := cond(&db.commit)
		db.commit.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committer never reached: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHoldGroupOpen checks when the group commit holds a group open for
// more ingests: only after a commit during which holdMinIngests Appends
// arrived, never for other writes or with MaxBatchDelay below zero; that
// Appends arriving during a hold share its commit; and that a lone
// Append on an idle writer never waits.
func TestHoldGroupOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	appendN := func(t *testing.T, db *DB, prefix string, n int, wg *sync.WaitGroup) {
		for i := range n {
			wg.Go(func() {
				email := fmt.Sprintf("%s%d@example.com", prefix, i)
				if _, err := db.Append(ctx, Ingest{Records: []behavior.Record{rec(prefix+fmt.Sprint(i), behavior.ProductViewed, t0, email)}}); err != nil {
					t.Error(err)
				}
			})
		}
	}
	jobsN := func(t *testing.T, db *DB, n int, wg *sync.WaitGroup) {
		for range n {
			wg.Go(func() {
				if _, err := db.EnqueueJobs(ctx, JobSpec{Kind: "k", DueAt: t0}); err != nil {
					t.Error(err)
				}
			})
		}
	}
	cases := []struct {
		name  string
		delay time.Duration
		// queued are the writes waiting while the first commit runs.
		ingests bool
		// queued is how many (default 3).
		queued int
		// late: Appends started once the runner holds the group.
		late      int
		wantHolds uint64
		// wantCommits after the blocking one.
		wantCommits uint64
	}{
		{name: "ingests held, late arrivals share the commit", delay: 10 * time.Second, ingests: true, late: 3, wantHolds: 1, wantCommits: 1},
		{name: "scheduler writes never held", delay: 10 * time.Second, ingests: false, wantHolds: 0, wantCommits: 1},
		{name: "negative delay never holds", delay: -1, ingests: true, wantHolds: 0, wantCommits: 1},
		{name: "one ingest behind a commit is not held", delay: 10 * time.Second, ingests: true, queued: 1, wantHolds: 0, wantCommits: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{MaxBatchDelay: tc.delay})
			release := blockCommit(t, db)
			before := db.CommitStats()
			var wg sync.WaitGroup
			queued := tc.queued
			if queued == 0 {
				queued = 3
			}
			if tc.ingests {
				appendN(t, db, "early", queued, &wg)
			} else {
				jobsN(t, db, queued, &wg)
			}
			waitCommitState(t, db, "writes queued", func(g *committer) bool { return len(g.queue) == queued })
			// Long enough that half of it, the hold's bound, outlasts
			// starting the late Appends by far.
			time.Sleep(600 * time.Millisecond)
			release()
			if tc.late > 0 {
				waitCommitState(t, db, "holding", func(g *committer) bool { return g.hold.waiting })
				appendN(t, db, "late", tc.late, &wg)
			}
			wg.Wait()
			after := db.CommitStats()
			if got := after.Holds - before.Holds; got != tc.wantHolds {
				t.Errorf("holds: %d, want %d", got, tc.wantHolds)
			}
			// The blocking write's own commit ends after before was read.
			if got := after.Commits - before.Commits - 1; got != tc.wantCommits {
				t.Errorf("commits after the blocking one: %d, want %d", got, tc.wantCommits)
			}
			if got, want := after.Writes-before.Writes-1, uint64(queued+tc.late); got != want {
				t.Errorf("writes: %d, want %d", got, want)
			}
		})
	}

	t.Run("lone appends on an idle writer", func(t *testing.T) {
		t.Parallel()
		db, _ := openTestDB(t, Options{MaxBatchDelay: time.Minute})
		for i := range 3 {
			mustAppend(t, db, rec(fmt.Sprintf("lone%d", i), behavior.ProductViewed, t0, "lone@example.com"))
		}
		if s := db.CommitStats(); s.Holds != 0 || s.Commits != 3 {
			t.Errorf("3 sequential appends: %d holds, %d commits; want 0, 3", s.Holds, s.Commits)
		}
	})

	t.Run("a full group ends the hold", func(t *testing.T) {
		t.Parallel()
		db, _ := openTestDB(t, Options{MaxBatchDelay: time.Minute})
		release := blockCommit(t, db)
		var wg sync.WaitGroup
		appendN(t, db, "first", holdMinIngests, &wg)
		waitCommitState(t, db, "appends queued", func(g *committer) bool { return len(g.queue) == holdMinIngests })
		time.Sleep(4 * time.Second) // the hold may last up to 2 s
		release()
		waitCommitState(t, db, "holding", func(g *committer) bool { return g.hold.waiting })
		appendN(t, db, "burst", fullGroup, &wg)
		wg.Wait()
		// The burst may commit in two groups, the second held briefly.
		s := db.CommitStats()
		if s.Holds < 1 {
			t.Fatalf("%d holds, want at least 1", s.Holds)
		}
		if s.HoldSeconds >= 1.9 {
			t.Errorf("held %.2f s with %d calls waiting: the full group should have ended the hold", s.HoldSeconds, fullGroup+holdMinIngests)
		}
	})
}

// TestIngestBusy checks the signal evaluation gives way by: true once a
// commit found holdMinIngests Appends queued behind it, false for other
// writes queued or a single Append, and false again ingestBusyFor later.
func TestIngestBusy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name     string
		ingests  int
		jobs     int
		wantBusy bool
	}{
		{name: "webhooks queued behind a commit", ingests: 3, wantBusy: true},
		{name: "one webhook behind a commit", ingests: 1},
		{name: "scheduler writes behind a commit", jobs: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{MaxBatchDelay: -1})
			if db.IngestBusy() {
				t.Fatal("busy before any write")
			}
			release := blockCommit(t, db)
			var wg sync.WaitGroup
			for i := range tc.ingests {
				wg.Go(func() {
					email := fmt.Sprintf("busy%d@example.com", i)
					if _, err := db.Append(ctx, Ingest{Records: []behavior.Record{rec(fmt.Sprint("busy", i), behavior.ProductViewed, t0, email)}}); err != nil {
						t.Error(err)
					}
				})
			}
			for range tc.jobs {
				wg.Go(func() {
					if _, err := db.EnqueueJobs(ctx, JobSpec{Kind: "k", DueAt: t0}); err != nil {
						t.Error(err)
					}
				})
			}
			waitCommitState(t, db, "writes queued", func(g *committer) bool { return len(g.queue) == tc.ingests+tc.jobs })
			release() // returns once the blocking write has committed
			if got := db.IngestBusy(); got != tc.wantBusy {
				t.Errorf("busy after the commit: %v, want %v", got, tc.wantBusy)
			}
			wg.Wait()
			deadline := time.Now().Add(20 * time.Second)
			for db.IngestBusy() {
				if time.Now().After(deadline) {
					t.Fatal("still busy 20 s after the last write")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestClaimAheadSharesACommit: a claim made ahead of need joins the next
// write's commit (one commit for both), and alone still commits, after
// waiting no longer than patientFor for company.
func TestClaimAheadSharesACommit(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	enqueue := func(key string) {
		t.Helper()
		if _, err := db.EnqueueJobs(ctx, JobSpec{Kind: "k", UniqueKey: key, DueAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("a")

	// Alone.
	before := db.CommitStats()
	start := time.Now()
	jobs, err := db.ClaimDueJobsAhead(ctx, t0, 10)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim alone: %d jobs, %v", len(jobs), err)
	}
	if waited := time.Since(start); waited < patientFor/2 {
		t.Errorf("a claim ahead with nothing to share committed after %v, without waiting for company", waited)
	}
	if got := db.CommitStats().Commits - before.Commits; got != 1 {
		t.Errorf("claim alone: %d commits", got)
	}

	// With company: the claim waits in the queue, then an urgent write
	// arrives and both commit together.
	enqueue("b")
	before = db.CommitStats()
	claimed := make(chan int, 1)
	go func() {
		jobs, err := db.ClaimDueJobsAhead(ctx, t0, 10)
		if err != nil {
			t.Error(err)
		}
		claimed <- len(jobs)
	}()
	waitCommitState(t, db, "a claim ahead waiting for company", func(g *committer) bool { return g.company.waiting })
	enqueue("c") // due at t0 too, but enqueued after the claim ran
	if n := <-claimed; n != 1 {
		t.Errorf("claim with company took %d jobs, want 1", n)
	}
	after := db.CommitStats()
	if commits, writes := after.Commits-before.Commits, after.Writes-before.Writes; commits != 1 || writes != 2 {
		t.Errorf("claim ahead and a write: %d commits of %d writes, want 1 of 2", commits, writes)
	}
	// An urgent claim does not wait.
	jobs, err = db.ClaimDueJobs(ctx, t0, 10)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("urgent claim: %d jobs, %v", len(jobs), err)
	}
}
