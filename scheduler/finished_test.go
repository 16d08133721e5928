package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

// A handler that ends its job in its own transaction answers Finished;
// the scheduler must then write nothing more for the job (a FinishJob on
// a job that is gone would fail and log an error every time).
func TestFinishedHandlerEndsItsOwnJob(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(t0)
	db := openStore(t, filepath.Join(t.TempDir(), "s.db"), fc)
	defer db.Close()
	ctx := context.Background()
	var states []storage.JobState
	s := scheduler.New(db, scheduler.Options{Clock: fc, OnFinish: func(_ storage.Job, st storage.JobState, _ time.Duration) {
		states = append(states, st)
	}})
	s.Handle("self", func(ctx context.Context, j storage.Job) error {
		// CommitStep is the store's way to end a job with other writes.
		_, _, err := db.CommitStep(ctx, storage.StepCommit{
			Journey:     storage.Journey{ID: "j1", Rule: "r", ProfileID: "p1", Status: storage.JourneyCompleted},
			CompleteJob: j.ID,
		})
		if err != nil {
			return err
		}
		return scheduler.Finished()
	})
	if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "self", DueAt: t0}); err != nil {
		t.Fatal(err)
	}
	n, err := s.RunDue(ctx, t0)
	if err != nil || n != 1 {
		t.Fatalf("RunDue = %d, %v", n, err)
	}
	counts, err := db.CountJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[storage.JobCompleted] != 1 || counts[storage.JobRunning] != 0 || counts[storage.JobRetryable] != 0 {
		t.Errorf("jobs = %v, want one completed and nothing running or retryable", counts)
	}
	if len(states) != 1 || states[0] != storage.JobCompleted {
		t.Errorf("OnFinish saw %v, want [completed]", states)
	}
	if n, _ := s.RunDue(ctx, t0.Add(time.Hour)); n != 0 {
		t.Errorf("%d jobs ran again", n)
	}
}

// OnStart functions run on Recover, after jobs left running are back,
// and a failing one stops Run from starting.
func TestOnStartRunsAtRecoverAndCanStopRun(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(t0)
	db := openStore(t, filepath.Join(t.TempDir(), "s.db"), fc)
	defer db.Close()
	ctx := context.Background()
	s := scheduler.New(db, scheduler.Options{Clock: fc})
	calls := 0
	s.OnStart(func(context.Context) error { calls++; return nil })
	if _, err := s.Recover(ctx); err != nil || calls != 1 {
		t.Fatalf("Recover: calls=%d err=%v", calls, err)
	}
	boom := errors.New("boom")
	s2 := scheduler.New(db, scheduler.Options{Clock: fc})
	s2.OnStart(func(context.Context) error { return boom })
	if err := s2.Run(ctx); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the start error", err)
	}
	select {
	case <-s2.Running():
		t.Error("a scheduler whose start failed reports running")
	default:
	}
}

// Options.Limits keeps a kind below the worker count while other kinds
// still use the rest.
func TestLimitsCapAKindsConcurrency(t *testing.T) {
	t.Parallel()
	db := openStore(t, filepath.Join(t.TempDir(), "s.db"), clock.Real{})
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := scheduler.New(db, scheduler.Options{Workers: 8, Limits: map[string]int{"slow": 2}})
	var mu sync.Mutex
	active := map[string]int{}
	most := map[string]int{}
	ran := 0
	track := func(kind string) {
		mu.Lock()
		active[kind]++
		most[kind] = max(most[kind], active[kind])
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		active[kind]--
		ran++
		mu.Unlock()
	}
	for _, kind := range []string{"slow", "fast"} {
		s.Handle(kind, func(context.Context, storage.Job) error { track(kind); return nil })
	}
	var specs []storage.JobSpec
	for range 12 {
		specs = append(specs, storage.JobSpec{Kind: "slow"}, storage.JobSpec{Kind: "fast"})
	}
	if _, err := s.Enqueue(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	runUntilDone(t, s, 24, func() int { mu.Lock(); defer mu.Unlock(); return ran }, nil)
	if most["slow"] > 2 {
		t.Errorf("%d slow jobs ran at once, limit 2", most["slow"])
	}
	if most["fast"] < 3 {
		t.Errorf("at most %d fast jobs ran at once: the limit held back other kinds", most["fast"])
	}
}

// Options.Yields: while Busy, at most Limit jobs of the kind run at once
// and every one still runs; once Busy ends the rest run at the kind's
// full limit; a job due longer ago than MaxLag runs regardless.
func TestYieldGivesWayWhileBusy(t *testing.T) {
	t.Parallel()
	type phase struct {
		mu                sync.Mutex
		active, most, ran int
	}
	run := func(t *testing.T, busy *atomic.Bool, maxLag time.Duration, due time.Time, n int, flip func(*phase)) *phase {
		db := openStore(t, filepath.Join(t.TempDir(), "s.db"), clock.Real{})
		defer db.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := scheduler.New(db, scheduler.Options{
			Workers: 8, Limits: map[string]int{"eval": 4},
			Yields: map[string]scheduler.Yield{"eval": {Busy: busy.Load, Limit: 1, MaxLag: maxLag}},
		})
		p := &phase{}
		s.Handle("eval", func(context.Context, storage.Job) error {
			p.mu.Lock()
			p.active++
			p.most = max(p.most, p.active)
			p.mu.Unlock()
			time.Sleep(40 * time.Millisecond)
			p.mu.Lock()
			p.active--
			p.ran++
			p.mu.Unlock()
			return nil
		})
		specs := make([]storage.JobSpec, n)
		for i := range specs {
			specs[i] = storage.JobSpec{Kind: "eval", DueAt: due}
		}
		if _, err := s.Enqueue(ctx, specs...); err != nil {
			t.Fatal(err)
		}
		var tick func()
		if flip != nil {
			tick = func() { flip(p) }
		}
		runUntilDone(t, s, n, func() int { p.mu.Lock(); defer p.mu.Unlock(); return p.ran }, tick)
		return p
	}

	t.Run("busy then idle", func(t *testing.T) {
		t.Parallel()
		var busy atomic.Bool
		busy.Store(true)
		mostWhileBusy := -1
		p := run(t, &busy, time.Hour, time.Now(), 12, func(p *phase) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if busy.Load() && p.ran >= 4 {
				// Four ran one at a time; let the rest go.
				mostWhileBusy = p.most
				p.most = 0
				busy.Store(false)
			}
		})
		if mostWhileBusy != 1 {
			t.Errorf("%d jobs ran at once while busy, want 1", mostWhileBusy)
		}
		if p.most < 2 {
			t.Errorf("at most %d jobs ran at once after busy ended, want the kind's limit back", p.most)
		}
		if p.most > 4 {
			t.Errorf("%d jobs ran at once, kind limit 4", p.most)
		}
	})
	t.Run("overdue jobs stop yielding", func(t *testing.T) {
		t.Parallel()
		var busy atomic.Bool
		busy.Store(true)
		p := run(t, &busy, time.Minute, time.Now().Add(-time.Hour), 8, nil)
		if p.most < 2 {
			t.Errorf("jobs due an hour ago (max lag 1m) ran %d at a time while busy, want more than 1", p.most)
		}
	})
}

// runUntilDone runs s until ran reports n jobs done, calling tick (when
// set) at each look, then stops it.
func runUntilDone(t *testing.T, s *scheduler.Scheduler, n int, ran func() int, tick func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for got := ran(); got != n; got = ran() {
		if tick != nil {
			tick()
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d jobs ran", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
