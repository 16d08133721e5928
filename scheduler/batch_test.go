package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

// loopScheduler opens a store and a scheduler on a fake clock at t0 for
// tests of the real loop; run(want) runs the loop until want jobs have
// finished, then stops it.
func loopScheduler(t *testing.T, workers int) (s *scheduler.Scheduler, db *storage.DB, run func(want int)) {
	t.Helper()
	fc := clock.NewFake(t0)
	db = openStore(t, filepath.Join(t.TempDir(), "s.db"), fc)
	t.Cleanup(func() { _ = db.Close() })
	done := make(chan struct{}, 100)
	s = scheduler.New(db, scheduler.Options{
		Clock: fc, Backoff: func(int) time.Duration { return time.Minute }, Workers: workers,
		OnFinish: func(storage.Job, storage.JobState, time.Duration) { done <- struct{}{} },
	})
	run = func(want int) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan error, 1)
		go func() { stopped <- s.Run(ctx) }()
		deadline := time.After(30 * time.Second)
		for range want {
			select {
			case <-done:
			case <-deadline:
				cancel()
				t.Fatalf("fewer than %d jobs finished", want)
			}
		}
		cancel()
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
	}
	return s, db, run
}

// TestHandleBatchGetsAClaimInDueOrder: the jobs of a batch kind that one
// claim brings reach the batch handler in one call, in due order, next to
// ordinary jobs of other kinds, and each job's error is applied to that
// job alone with the usual meanings.
func TestHandleBatchGetsAClaimInDueOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db, run := loopScheduler(t, 16)
	var mu sync.Mutex
	var calls [][]string
	s.HandleBatch("b", func(ctx context.Context, jobs []storage.Job) []error {
		mu.Lock()
		defer mu.Unlock()
		var got []string
		errs := make([]error, len(jobs))
		for i, j := range jobs {
			got = append(got, string(j.Payload))
			switch string(j.Payload) {
			case "1":
				errs[i] = scheduler.Cancel(errors.New("no longer wanted"))
			case "2":
				errs[i] = scheduler.SnoozeUntil(t0.Add(time.Hour))
			case "3":
				errs[i] = errors.New("provider down")
			}
		}
		calls = append(calls, got)
		return errs
	})
	singles := 0
	s.Handle("single", func(context.Context, storage.Job) error {
		mu.Lock()
		singles++
		mu.Unlock()
		return nil
	})
	// Enqueued in reverse: due order, not enqueue order, must rule.
	var specs []storage.JobSpec
	for i := 9; i >= 0; i-- {
		specs = append(specs, storage.JobSpec{Kind: "b", Payload: []byte(strconv.Itoa(i)), DueAt: t0.Add(time.Duration(i-10) * time.Second)})
	}
	specs = append(specs, storage.JobSpec{Kind: "single", DueAt: t0.Add(-time.Minute)}, storage.JobSpec{Kind: "single", DueAt: t0})
	if _, err := s.Enqueue(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	run(12)

	if len(calls) != 1 {
		t.Fatalf("batch handler called %d times (%v), want once with every due job", len(calls), calls)
	}
	want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	if got := calls[0]; !slices.Equal(got, want) {
		t.Errorf("batch = %v, want due order %v", got, want)
	}
	if singles != 2 {
		t.Errorf("single handler ran %d times, want 2", singles)
	}
	counts, err := db.CountJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 0 and 4–9 completed with both singles; 1 cancelled; 2 snoozed; 3 to retry.
	wantCounts := map[storage.JobState]int{storage.JobCompleted: 9, storage.JobCancelled: 1, storage.JobScheduled: 1, storage.JobRetryable: 1}
	for st, n := range wantCounts {
		if counts[st] != n {
			t.Errorf("%s jobs = %d, want %d (all: %v)", st, counts[st], n, counts)
		}
	}
	if counts[storage.JobRunning] != 0 {
		t.Errorf("%d jobs left running", counts[storage.JobRunning])
	}
}

// TestHandleBatchHoldsAWorkerPerJob: a batch is never larger than
// Workers (it holds a worker per job), so a claim larger than that is
// cut into batches, still in due order, and no more jobs than Workers
// ever run at once.
func TestHandleBatchHoldsAWorkerPerJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, run := loopScheduler(t, 4)
	var mu sync.Mutex
	var calls [][]string
	running, most := 0, 0
	s.HandleBatch("b", func(ctx context.Context, jobs []storage.Job) []error {
		mu.Lock()
		running += len(jobs)
		most = max(most, running)
		var got []string
		for _, j := range jobs {
			got = append(got, string(j.Payload))
		}
		calls = append(calls, got)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // overlap with the next batch if it could start
		mu.Lock()
		running -= len(jobs)
		mu.Unlock()
		return make([]error, len(jobs))
	})
	for i := range 10 {
		if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "b", Payload: []byte(strconv.Itoa(i)), DueAt: t0.Add(time.Duration(i)*time.Millisecond - time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	run(10)
	var all []string
	for _, c := range calls {
		if len(c) > 4 {
			t.Errorf("a batch of %d jobs with 4 workers: %v", len(c), c)
		}
		all = append(all, c...)
	}
	if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(all, want) {
		t.Errorf("batches %v, want every job once in due order", calls)
	}
	if most > 4 {
		t.Errorf("%d jobs ran at once with 4 workers", most)
	}
}

// TestHandleBatchFailures: a batch handler that panics, or answers the
// wrong number of results, fails every job of its batch, which then
// retry; nothing is left running and the scheduler goes on.
func TestHandleBatchFailures(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]scheduler.BatchHandlerFunc{
		"panic":        func(context.Context, []storage.Job) []error { panic("boom") },
		"wrong length": func(context.Context, []storage.Job) []error { return []error{nil} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, db, run := loopScheduler(t, 4)
			s.HandleBatch("b", h)
			for i := range 3 {
				if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "b", Payload: []byte{byte('0' + i)}, DueAt: t0}); err != nil {
					t.Fatal(err)
				}
			}
			run(3)
			counts, err := db.CountJobs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if counts[storage.JobRetryable] != 3 || counts[storage.JobRunning] != 0 {
				t.Errorf("jobs = %v, want all 3 retryable", counts)
			}
			for id := uint64(1); id <= 3; id++ {
				j, err := db.Job(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if j.LastError == "" {
					t.Errorf("job %d failed without an error", id)
				}
				t.Logf("job %d: %s", id, j.LastError)
			}
		})
	}
}

// TestRunDueHandsBatchKindsOneJob: rule tests and backtests drive jobs
// one at a time through RunDue, batch kinds included.
func TestRunDueHandsBatchKindsOneJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := loopScheduler(t, 4)
	var sizes []int
	s.HandleBatch("b", func(_ context.Context, jobs []storage.Job) []error {
		sizes = append(sizes, len(jobs))
		return make([]error, len(jobs))
	})
	for range 3 {
		if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "b", DueAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.RunDue(ctx, t0)
	if err != nil || n != 3 {
		t.Fatalf("RunDue = %d, %v", n, err)
	}
	if !slices.Equal(sizes, []int{1, 1, 1}) {
		t.Errorf("batch sizes %v, want three single jobs", sizes)
	}
}

// TestLastRegistrationWins: Handle and HandleBatch for one kind replace
// each other, so the loop and RunDue never disagree on which runs.
func TestLastRegistrationWins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, run := loopScheduler(t, 4)
	var mu sync.Mutex
	var got []string
	s.HandleBatch("k", func(_ context.Context, jobs []storage.Job) []error {
		mu.Lock()
		got = append(got, "batch")
		mu.Unlock()
		return make([]error, len(jobs))
	})
	s.Handle("k", func(context.Context, storage.Job) error {
		mu.Lock()
		got = append(got, "single")
		mu.Unlock()
		return nil
	})
	for range 2 {
		if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "k", DueAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	run(2)
	if !slices.Equal(got, []string{"single", "single"}) {
		t.Errorf("ran %v, want the handler registered last for both jobs", got)
	}
}

// claimSpy is the real store, noting which claim the scheduler makes.
type claimSpy struct {
	*storage.DB
	mu     sync.Mutex
	claims []string
}

func (c *claimSpy) note(kind string) {
	c.mu.Lock()
	c.claims = append(c.claims, kind)
	c.mu.Unlock()
}

func (c *claimSpy) ClaimDueJobs(ctx context.Context, now time.Time, limit int) ([]storage.Job, error) {
	c.note("now")
	return c.DB.ClaimDueJobs(ctx, now, limit)
}

func (c *claimSpy) ClaimDueJobsAhead(ctx context.Context, now time.Time, limit int) ([]storage.Job, error) {
	c.note("ahead")
	return c.DB.ClaimDueJobsAhead(ctx, now, limit)
}

// TestClaimsAheadOnlyWhenWorkersAreBusy: while a claim's jobs can start
// at once the scheduler claims now; once its workers cannot take a whole
// batch, it claims ahead, letting the claim share another write's commit.
func TestClaimsAheadOnlyWhenWorkersAreBusy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fc := clock.NewFake(t0)
	db := openStore(t, filepath.Join(t.TempDir(), "s.db"), fc)
	t.Cleanup(func() { _ = db.Close() })
	spy := &claimSpy{DB: db}
	done := make(chan struct{}, 100)
	s := scheduler.New(spy, scheduler.Options{
		Clock: fc, Workers: 4, Batch: 2,
		OnFinish: func(storage.Job, storage.JobState, time.Duration) { done <- struct{}{} },
	})
	release := make(chan struct{})
	s.HandleBatch("b", func(ctx context.Context, jobs []storage.Job) []error {
		<-release
		return make([]error, len(jobs))
	})
	for i := range 8 {
		if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "b", Payload: []byte(strconv.Itoa(i)), DueAt: t0.Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- s.Run(runCtx) }()
	// Two batches of two fill the four workers; the third claim is made
	// while they run.
	deadline := time.Now().Add(30 * time.Second)
	for {
		spy.mu.Lock()
		n := len(spy.claims)
		spy.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims so far: %v", spy.claims)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 8 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("jobs did not finish")
		}
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if want := []string{"now", "now", "ahead"}; !slices.Equal(spy.claims[:3], want) {
		t.Errorf("claims %v, want them to begin %v", spy.claims, want)
	}
}
