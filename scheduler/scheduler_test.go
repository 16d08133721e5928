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

func openStore(t *testing.T, path string, c clock.Clock) *storage.DB {
	t.Helper()
	db, err := storage.Open(path, storage.Options{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestRunDueOutcomes(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(t0)
	db := openStore(t, filepath.Join(t.TempDir(), "s.db"), fc)
	defer db.Close()
	ctx := context.Background()
	s := scheduler.New(db, scheduler.Options{Clock: fc, Backoff: func(int) time.Duration { return time.Minute }})

	var mu sync.Mutex
	runs := map[string]int{}
	count := func(k string) int { mu.Lock(); defer mu.Unlock(); return runs[k] }
	s.Handle("ok", func(ctx context.Context, j storage.Job) error {
		mu.Lock()
		runs["ok"]++
		mu.Unlock()
		return nil
	})
	s.Handle("flaky", func(ctx context.Context, j storage.Job) error {
		mu.Lock()
		runs["flaky"]++
		mu.Unlock()
		if j.Attempts < 3 {
			return errors.New("try again")
		}
		return nil
	})
	s.Handle("snooze", func(ctx context.Context, j storage.Job) error {
		mu.Lock()
		runs["snooze"]++
		n := runs["snooze"]
		mu.Unlock()
		if n == 1 {
			return scheduler.SnoozeUntil(t0.Add(2 * time.Hour))
		}
		if j.Attempts != 1 {
			t.Errorf("snooze counted as attempt: attempts=%d", j.Attempts)
		}
		return nil
	})
	s.Handle("cancel", func(ctx context.Context, j storage.Job) error {
		mu.Lock()
		runs["cancel"]++
		mu.Unlock()
		return scheduler.Cancel(errors.New("no longer wanted"))
	})
	s.Handle("doomed", func(ctx context.Context, j storage.Job) error {
		mu.Lock()
		runs["doomed"]++
		mu.Unlock()
		return errors.New("always fails")
	})
	s.Handle("retryat", func(ctx context.Context, j storage.Job) error {
		mu.Lock()
		runs["retryat"]++
		mu.Unlock()
		if j.Attempts == 1 {
			return scheduler.RetryAt(t0.Add(30*time.Minute), errors.New("429"))
		}
		return nil
	})

	_, err := s.Enqueue(ctx,
		storage.JobSpec{Kind: "ok", DueAt: t0.Add(time.Hour)},
		storage.JobSpec{Kind: "flaky"},
		storage.JobSpec{Kind: "snooze"},
		storage.JobSpec{Kind: "cancel", UniqueKey: "c1"},
		storage.JobSpec{Kind: "doomed", MaxAttempts: 2},
		storage.JobSpec{Kind: "retryat"},
		storage.JobSpec{Kind: "nohandler"},
	)
	if err != nil {
		t.Fatal(err)
	}
	// A second enqueue with the same unique key is a no-op, even after the
	// first job finished.
	if _, err := s.RunDue(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Enqueue(ctx, storage.JobSpec{Kind: "cancel", UniqueKey: "c1"}); n != 0 {
		t.Fatalf("unique key enqueued twice")
	}
	for _, step := range []time.Duration{time.Minute, 2 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour} {
		fc.Set(t0.Add(step))
		if _, err := s.RunDue(ctx, fc.Now()); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"ok": 1, "flaky": 3, "snooze": 2, "cancel": 1, "doomed": 2, "retryat": 2}
	for k, n := range want {
		if got := count(k); got != n {
			t.Errorf("%s ran %d times, want %d", k, got, n)
		}
	}
	counts, err := db.CountJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[storage.JobDiscarded] != 1 {
		t.Errorf("discarded = %d, want 1 (doomed)", counts[storage.JobDiscarded])
	}
	if counts[storage.JobCancelled] != 2 {
		t.Errorf("cancelled = %d, want 2 (cancel, nohandler)", counts[storage.JobCancelled])
	}
	if _, ok, _ := db.NextJobDue(ctx); ok {
		t.Errorf("jobs still due")
	}
}

func TestRunWakesForNewAndDueJobs(t *testing.T) {
	t.Parallel()
	db := openStore(t, filepath.Join(t.TempDir(), "s.db"), nil)
	defer db.Close()
	s := scheduler.New(db, scheduler.Options{})
	done := make(chan string, 4)
	s.Handle("k", func(ctx context.Context, j storage.Job) error {
		done <- string(j.Payload)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	<-s.Running()
	// The loop sleeps up to an hour with nothing due; Enqueue must wake it.
	if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "k", Payload: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, storage.JobSpec{Kind: "k", Payload: []byte("later"), DueAt: time.Now().Add(150 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"now", "later"} {
		select {
		case got := <-done:
			if got != want {
				t.Fatalf("ran %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("job %q never ran", want)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A job whose process dies while it runs is run again after restart, and
// only jobs that did not finish run again.
func TestRecoverAfterCrash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.db")
	db := openStore(t, path, nil)
	ctx := context.Background()
	if _, err := db.EnqueueJobs(ctx, storage.JobSpec{Kind: "k", Payload: []byte("a")}, storage.JobSpec{Kind: "k", Payload: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	// Claim both, finish one, then "crash" (close without finishing b).
	jobs, err := db.ClaimDueJobs(ctx, time.Now(), 10)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("claim: %v %d", err, len(jobs))
	}
	if err := db.FinishJob(ctx, jobs[0].ID, storage.JobOutcome{State: storage.JobCompleted}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openStore(t, path, nil)
	defer db.Close()
	s := scheduler.New(db, scheduler.Options{})
	var ran atomic.Int32
	got := make(chan string, 2)
	s.Handle("k", func(ctx context.Context, j storage.Job) error {
		ran.Add(1)
		got <- string(j.Payload)
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	go func() { _ = s.Run(rctx) }()
	select {
	case p := <-got:
		if p != "b" {
			t.Fatalf("re-ran %q, want only b", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("interrupted job never re-ran")
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if n := ran.Load(); n != 1 {
		t.Fatalf("ran %d jobs after recovery, want 1", n)
	}
}

func TestDefaultBackoffGrowsAndCaps(t *testing.T) {
	t.Parallel()
	prev := time.Duration(0)
	for a := 1; a <= 20; a++ {
		d := scheduler.DefaultBackoff(a)
		if d > 72*time.Minute {
			t.Fatalf("attempt %d: %s over the cap", a, d)
		}
		if a <= 8 && d < prev/2 {
			t.Fatalf("attempt %d: %s shrank from %s", a, d, prev)
		}
		prev = d
	}
}

// Stopped while starting (SIGTERM right after `nudge serve` began), Run
// returns no error: the audit saw exit 1 with "recover jobs: context
// canceled" for a clean stop.
func TestRunStoppedWhileStarting(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	db := openStore(t, filepath.Join(t.TempDir(), "nudge.db"), fc)
	s := scheduler.New(db, scheduler.Options{Clock: fc})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run after a stop while starting: %v", err)
	}
}
