// Package scheduler runs durable jobs kept in the store: it sleeps until
// the next job is due or a new job arrives (never fixed-interval polling),
// claims due jobs, runs their handlers and records the outcome. A job left
// running by a crash returns to retryable on start, so handlers must be
// idempotent; unique keys on the jobs they enqueue make that easy.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

// HandlerFunc runs one job. A nil error completes it. Errors made by
// Snooze, RetryAt and Cancel steer what happens next; any other error
// retries with exponential backoff until MaxAttempts, then discards.
type HandlerFunc func(ctx context.Context, job storage.Job) error

// BatchHandlerFunc runs many due jobs of one kind at once, in due order,
// and returns one error per job, with HandlerFunc's meanings. A kind whose
// jobs write neighbouring keys (journey steps) commits a batch in one
// transaction instead of one per job.
type BatchHandlerFunc func(ctx context.Context, jobs []storage.Job) []error

type snoozeError struct{ at time.Time }

func (e *snoozeError) Error() string { return "snoozed until " + e.at.Format(time.RFC3339) }

// SnoozeUntil returns an error that reschedules the job for t without
// counting the attempt as a failure (a wait that moved, a cap that is full).
func SnoozeUntil(t time.Time) error { return &snoozeError{at: t} }

type retryAtError struct {
	at  time.Time
	err error
}

func (e *retryAtError) Error() string { return e.err.Error() }
func (e *retryAtError) Unwrap() error { return e.err }

// RetryAt returns an error that retries the job at t (a provider's
// Retry-After) and counts as a failed attempt.
func RetryAt(t time.Time, err error) error { return &retryAtError{at: t, err: err} }

type cancelError struct{ err error }

func (e *cancelError) Error() string { return "cancelled: " + e.err.Error() }
func (e *cancelError) Unwrap() error { return e.err }

// Cancel returns an error that ends the job without retrying.
func Cancel(err error) error { return &cancelError{err: err} }

type finishedError struct{}

func (finishedError) Error() string { return "finished by its handler" }

// Finished returns the error a handler reports after it ended its own job
// as completed inside its own write transaction (see
// storage.StepCommit.CompleteJob): the scheduler then writes nothing for
// it, which saves a transaction per job on the busiest path.
func Finished() error { return finishedError{} }

// Options configure a Scheduler.
type Options struct {
	Clock  clock.Clock  // default clock.Real
	Logger *slog.Logger // default slog.Default()
	// Workers is how many jobs run at once (default 4).
	Workers int
	// Limits caps how many jobs of a kind run at once, below Workers
	// (absent or 0: only Workers bounds them). A server gives its due
	// sends many workers but keeps the evaluation of incoming records,
	// which competes with the webhooks for CPU and the writer, to a few.
	Limits map[string]int
	// Yields makes jobs of a kind give way to more urgent work while it
	// lasts (see Yield).
	Yields map[string]Yield
	// Batch is how many jobs one claim takes (default 64).
	Batch int
	// Backoff is the delay before retry number attempt (1-based); default
	// exponential from 1 s, capped at 1 h, with ±20 % jitter.
	Backoff func(attempt int) time.Duration
	// OnFinish, when set, is told every outcome (metrics).
	OnFinish func(job storage.Job, state storage.JobState, lag time.Duration)
}

// Yield is how jobs of one kind give way while Busy reports true: at most
// Limit of them then start at once, and the others wait until Busy turns
// false, a slot frees up, or they have been due for MaxLag, after which
// they run regardless, so giving way delays a job by a bounded time and
// never starves it. A server lets the evaluation of stored records yield
// to a burst of webhooks: both need the single writer and the CPU, a
// webhook's sender is waiting for its answer (and retries after a
// timeout), and an evaluation only decides what to send minutes or hours
// later.
type Yield struct {
	// Busy reports whether the more urgent work is under way.
	Busy func() bool
	// Limit is how many jobs of the kind run at once while Busy (min 1).
	Limit int
	// MaxLag is how long after its due time a job stops yielding
	// (default 1 minute).
	MaxLag time.Duration
	// Recheck is how often a waiting job looks at Busy again (default
	// 10 ms); waiting jobs also start at once when a running one ends.
	Recheck time.Duration
}

// yielder is a Yield with its slots.
type yielder struct {
	Yield
	slots chan struct{}
	freed chan struct{} // a slot was given back (buffered, 1)
}

// Scheduler dispatches due jobs to handlers by kind.
type Scheduler struct {
	store    storage.Jobs
	opts     Options
	mu       sync.RWMutex
	handlers map[string]HandlerFunc
	batches  map[string]BatchHandlerFunc
	starts   []func(context.Context) error
	limits   map[string]chan struct{} // per-kind semaphores from Options.Limits; fixed at New
	yields   map[string]*yielder      // from Options.Yields; fixed at New
	wake     chan struct{}
	running  chan struct{} // closed once Run has recovered jobs and started
	once     sync.Once
}

// New returns a scheduler over store.
func New(store storage.Jobs, opts Options) *Scheduler {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Batch <= 0 {
		opts.Batch = 64
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	limits := map[string]chan struct{}{}
	for kind, n := range opts.Limits {
		if n > 0 && n < opts.Workers {
			limits[kind] = make(chan struct{}, n)
		}
	}
	yields := map[string]*yielder{}
	for kind, y := range opts.Yields {
		if y.Busy == nil {
			continue
		}
		y.Limit = max(y.Limit, 1)
		if y.MaxLag <= 0 {
			y.MaxLag = time.Minute
		}
		if y.Recheck <= 0 {
			y.Recheck = 10 * time.Millisecond
		}
		yields[kind] = &yielder{Yield: y, slots: make(chan struct{}, y.Limit), freed: make(chan struct{}, 1)}
	}
	return &Scheduler{
		store:    store,
		opts:     opts,
		limits:   limits,
		yields:   yields,
		handlers: map[string]HandlerFunc{},
		batches:  map[string]BatchHandlerFunc{},
		wake:     make(chan struct{}, 1),
		running:  make(chan struct{}),
	}
}

// DefaultBackoff grows as 2^(attempt-1) seconds, capped at one hour, with
// ±20 % jitter so retries of many jobs spread out.
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := time.Second << min(attempt-1, 12)
	if d > time.Hour {
		d = time.Hour
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// Handle registers the handler for a job kind, replacing a HandleBatch
// for it. Call before Run.
func (s *Scheduler) Handle(kind string, h HandlerFunc) {
	s.mu.Lock()
	s.handlers[kind] = h
	delete(s.batches, kind) // the last registration for a kind wins
	s.mu.Unlock()
}

// HandleBatch registers the batch handler for a job kind, which then
// receives the due jobs of that kind one claim brings (up to
// Options.Batch and Options.Workers, in due order) in one call, holding
// a worker per job. Limits and Yields do not apply to the kind. RunDue still hands it one job at a
// time. Call before Run; it replaces a Handle for the kind.
func (s *Scheduler) HandleBatch(kind string, h BatchHandlerFunc) {
	s.mu.Lock()
	s.batches[kind] = h
	delete(s.handlers, kind)
	s.mu.Unlock()
}

// OnStart registers fn to run when Run starts, after interrupted jobs are
// recovered and before any job runs: recovery of work a crash left half
// done outside the job queue (sends left "sending"). Call before Run.
func (s *Scheduler) OnStart(fn func(ctx context.Context) error) {
	s.mu.Lock()
	s.starts = append(s.starts, fn)
	s.mu.Unlock()
}

// Enqueue stores jobs and wakes the loop.
func (s *Scheduler) Enqueue(ctx context.Context, specs ...storage.JobSpec) (int, error) {
	n, err := s.store.EnqueueJobs(ctx, specs...)
	if err != nil {
		return 0, fmt.Errorf("scheduler: enqueue: %w", err)
	}
	if n > 0 {
		s.Wake()
	}
	return n, nil
}

// Wake tells the loop that jobs may have been added (by Append, PutJourney
// or CreateSend), so it re-reads the next due time.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Running is closed once Run has recovered jobs and entered its loop; the
// readiness probe watches it.
func (s *Scheduler) Running() <-chan struct{} { return s.running }

// Recover returns jobs a crash left running to retryable and runs the
// OnStart functions; Run calls it first. It returns how many jobs it
// recovered. Call it only when no job of this process is running.
func (s *Scheduler) Recover(ctx context.Context) (int, error) {
	n, err := s.store.RecoverJobs(ctx, s.opts.Clock.Now())
	if err != nil {
		return 0, fmt.Errorf("scheduler: recover: %w", err)
	}
	s.mu.RLock()
	starts := s.starts
	s.mu.RUnlock()
	for _, fn := range starts {
		if err := fn(ctx); err != nil {
			return n, fmt.Errorf("scheduler: start: %w", err)
		}
	}
	return n, nil
}

// Run recovers jobs left running, then dispatches due jobs until ctx ends.
// It returns after in-flight jobs finish.
func (s *Scheduler) Run(ctx context.Context) error {
	if n, err := s.Recover(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing ran, nothing to drain
		}
		return err
	} else if n > 0 {
		s.opts.Logger.Info("scheduler recovered interrupted jobs", "jobs", n)
	}
	s.once.Do(func() { close(s.running) })
	sem := make(chan struct{}, s.opts.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		now := s.opts.Clock.Now()
		claim := s.store.ClaimDueJobs
		if cap(sem)-len(sem) < s.opts.Batch {
			// The workers are busy: these jobs wait for some to finish
			// anyway, so the claim may wait to share another write's
			// commit instead of taking the writer for itself.
			claim = s.store.ClaimDueJobsAhead
		}
		jobs, err := claim(ctx, now, s.opts.Batch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.opts.Logger.Error("scheduler claim failed", "error", err)
			if !sleep(ctx, time.Second, nil) {
				return nil
			}
			continue
		}
		singles, batches := s.split(jobs)
		for _, b := range batches {
			// A batch holds a worker per job, so Workers still bounds the
			// jobs in flight (a crash catches at most that many sends
			// mid-call, and providers see no more calls at once).
			held := 0
			for range b.jobs {
				select {
				case sem <- struct{}{}:
					held++
					continue
				case <-ctx.Done():
				}
				break
			}
			if held < len(b.jobs) {
				for range held {
					<-sem
				}
				for _, j := range b.jobs {
					s.release(j)
				}
				continue
			}
			wg.Add(1)
			go func(b jobBatch) {
				defer func() {
					for range b.jobs {
						<-sem
					}
					wg.Done()
				}()
				s.runBatch(context.WithoutCancel(ctx), b.h, b.jobs)
			}(b)
		}
		for _, j := range singles {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				// Claimed but not started: hand them back now rather than
				// waiting for the next start's recovery.
				s.release(j)
				continue
			}
			wg.Add(1)
			go func(j storage.Job) {
				defer func() { <-sem; wg.Done() }()
				if limit := s.limits[j.Kind]; limit != nil {
					// The job holds a worker while it waits for its kind's
					// slot: jobs claimed are jobs started, so shutdown and
					// recovery see them as running either way.
					limit <- struct{}{}
					defer func() { <-limit }()
				}
				if y := s.yields[j.Kind]; y != nil {
					defer y.wait(ctx, s.opts.Clock, j)() // waits now; gives the slot back when the job ends
				}
				s.run(context.WithoutCancel(ctx), j)
			}(j)
		}
		if len(jobs) == s.opts.Batch {
			continue // more may be due
		}
		next, ok, err := s.store.NextJobDue(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.opts.Logger.Error("scheduler next-due failed", "error", err)
			next, ok = now.Add(time.Second), true
		}
		var wait time.Duration = time.Hour
		if ok {
			wait = next.Sub(s.opts.Clock.Now())
		}
		if wait <= 0 {
			// Due now but not claimed: all claimed jobs are still running.
			// Wait for a wake-up or a short tick rather than spin.
			wait = 50 * time.Millisecond
		}
		if !sleep(ctx, wait, s.wake) {
			return nil
		}
	}
}

// wait returns once j may run under y, and the function that gives its
// slot back. At shutdown (ctx done) it stops yielding: the job is claimed
// and runs like every other job in flight.
func (y *yielder) wait(ctx context.Context, clk clock.Clock, j storage.Job) (release func()) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if ctx.Err() != nil || !y.Busy() || clk.Now().Sub(j.DueAt) >= y.MaxLag {
			return func() {}
		}
		select {
		case y.slots <- struct{}{}:
			return func() {
				<-y.slots
				select {
				case y.freed <- struct{}{}:
				default:
				}
			}
		default:
		}
		if t == nil {
			t = time.NewTimer(y.Recheck)
		} else {
			t.Reset(y.Recheck)
		}
		select {
		case <-t.C:
		case <-y.freed:
		case <-ctx.Done():
		}
	}
}

func (s *Scheduler) release(j storage.Job) {
	_ = s.store.FinishJob(context.Background(), j.ID, storage.JobOutcome{State: storage.JobRetryable, DueAt: s.opts.Clock.Now(), Error: "released at shutdown"})
}

// sleep waits d, a wake-up, or ctx's end; it reports false on ctx's end.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// RunDue runs every job due at or before now, including jobs that those
// jobs enqueue as due by then, one at a time in due order. Rule tests and
// backtests drive a fake clock with it; it returns how many jobs ran.
func (s *Scheduler) RunDue(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		jobs, err := s.store.ClaimDueJobs(ctx, now, 1)
		if err != nil {
			return total, fmt.Errorf("scheduler: claim: %w", err)
		}
		if len(jobs) == 0 {
			return total, nil
		}
		s.run(ctx, jobs[0])
		total++
	}
}

// jobBatch is the claimed jobs of one batch kind.
type jobBatch struct {
	h    BatchHandlerFunc
	jobs []storage.Job
}

// split parts claimed jobs into those run one by one and, per batch kind,
// those run together (each keeping the claim's due order).
func (s *Scheduler) split(jobs []storage.Job) ([]storage.Job, []jobBatch) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.batches) == 0 {
		return jobs, nil
	}
	var singles []storage.Job
	var batches []jobBatch
	at := map[string]int{}
	for _, j := range jobs {
		h := s.batches[j.Kind]
		if h == nil {
			singles = append(singles, j)
			continue
		}
		i, ok := at[j.Kind]
		if !ok {
			i = len(batches)
			at[j.Kind] = i
			batches = append(batches, jobBatch{h: h})
		}
		if len(batches[i].jobs) == s.opts.Workers {
			// Full: a batch holds a worker per job, so it can never be
			// larger than Workers.
			i = len(batches)
			at[j.Kind] = i
			batches = append(batches, jobBatch{h: h})
		}
		batches[i].jobs = append(batches[i].jobs, j)
	}
	return singles, batches
}

// runBatch runs jobs through their batch handler and records each
// outcome.
func (s *Scheduler) runBatch(ctx context.Context, h BatchHandlerFunc, jobs []storage.Job) {
	start := s.opts.Clock.Now()
	errs := safeRunBatch(ctx, h, jobs)
	for i, j := range jobs {
		var err error
		switch {
		case len(errs) != len(jobs):
			err = fmt.Errorf("batch handler for %q answered %d results for %d jobs", j.Kind, len(errs), len(jobs))
		default:
			err = errs[i]
		}
		s.finish(ctx, j, err, start.Sub(j.DueAt))
	}
}

func (s *Scheduler) run(ctx context.Context, j storage.Job) {
	s.mu.RLock()
	h := s.handlers[j.Kind]
	b := s.batches[j.Kind]
	s.mu.RUnlock()
	start := s.opts.Clock.Now()
	lag := start.Sub(j.DueAt)
	var err error
	switch {
	case h != nil:
		err = safeRun(ctx, h, j)
	case b != nil:
		errs := safeRunBatch(ctx, b, []storage.Job{j})
		if len(errs) == 1 {
			err = errs[0]
		} else {
			err = fmt.Errorf("batch handler for %q answered %d results for 1 job", j.Kind, len(errs))
		}
	default:
		err = Cancel(fmt.Errorf("no handler for job kind %q", j.Kind))
	}
	s.finish(ctx, j, err, lag)
}

// finish records a job's outcome from its handler's error.
func (s *Scheduler) finish(ctx context.Context, j storage.Job, err error, lag time.Duration) {
	if errors.As(err, new(finishedError)) {
		if s.opts.OnFinish != nil {
			s.opts.OnFinish(j, storage.JobCompleted, lag)
		}
		return
	}
	out := s.outcome(j, err)
	if ferr := s.store.FinishJob(ctx, j.ID, out); ferr != nil {
		// The job stays running and returns to retryable at the next start.
		s.opts.Logger.Error("scheduler finish failed", "job_id", j.ID, "kind", j.Kind, "error", ferr)
		return
	}
	if out.State == storage.JobRetryable || out.State == storage.JobScheduled {
		s.Wake()
	}
	if out.State == storage.JobDiscarded {
		s.opts.Logger.Warn("job discarded", "job_id", j.ID, "kind", j.Kind, "attempts", j.Attempts, "error", out.Error)
	}
	if s.opts.OnFinish != nil {
		s.opts.OnFinish(j, out.State, lag)
	}
}

// safeRunBatch runs a batch handler; a panic fails every job of the
// batch, which then retry with backoff like any failed job.
func safeRunBatch(ctx context.Context, h BatchHandlerFunc, jobs []storage.Job) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = make([]error, len(jobs))
			for i := range errs {
				errs[i] = fmt.Errorf("batch handler panic: %v", r)
			}
		}
	}()
	return h(ctx, jobs)
}

func safeRun(ctx context.Context, h HandlerFunc, j storage.Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h(ctx, j)
}

func (s *Scheduler) outcome(j storage.Job, err error) storage.JobOutcome {
	if err == nil {
		return storage.JobOutcome{State: storage.JobCompleted}
	}
	var sn *snoozeError
	var ra *retryAtError
	var ce *cancelError
	switch {
	case errors.As(err, &sn):
		return storage.JobOutcome{State: storage.JobScheduled, DueAt: sn.at}
	case errors.As(err, &ce):
		return storage.JobOutcome{State: storage.JobCancelled, Error: err.Error()}
	}
	max := j.MaxAttempts
	if max <= 0 {
		max = 25
	}
	if j.Attempts >= max {
		return storage.JobOutcome{State: storage.JobDiscarded, Error: err.Error()}
	}
	due := s.opts.Clock.Now().Add(s.opts.Backoff(j.Attempts))
	if errors.As(err, &ra) && ra.at.After(due) {
		due = ra.at
	}
	return storage.JobOutcome{State: storage.JobRetryable, DueAt: due, Error: err.Error()}
}
