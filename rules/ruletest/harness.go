package ruletest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/sending"
	"github.com/nudge-email/nudge/storage"
)

// DefaultStart is where a test's fake clock starts: a Monday at 09:00
// UTC, so that steps of whole hours stay clear of midnight.
var DefaultStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// TestStore is the store every test event belongs to unless it names one.
var TestStore = config.Store{ID: "main", Platform: "shopify", Name: "Test Store", URL: "https://shop.example.com", Currency: "USD"}

// Harness is the whole pipeline on a fake clock: a real bbolt store in a
// directory, the scheduler, the journey engine and the real sending
// dispatcher delivering to a Recorder. Rule tests, the backtest and
// engine tests drive it with RunUntil.
type Harness struct {
	Store     *storage.DB
	Clock     *clock.Fake
	Scheduler *scheduler.Scheduler
	Engine    *journey.Engine
	Sending   *sending.Dispatcher
	Recorder  *Recorder
}

// HarnessOptions configure NewHarness.
type HarnessOptions struct {
	// Dir holds the store file (required; a test's t.TempDir()).
	Dir string
	// Clock is the fake clock (default: a new one at DefaultStart); pass
	// the previous harness's to reopen after a simulated crash.
	Clock *clock.Fake
	// Recorder receives the sends (default: a new one); pass the previous
	// harness's to count sends across a restart.
	Recorder *Recorder
	Rules    *rules.Set
	Policies config.Policies
	// Sender, when set, replaces the recorder as every provider (e.g. a
	// sender that fails, for retry tests).
	Sender connectors.Sender
	Logger *slog.Logger // default: discard
	// DryRun makes the engine dispatch in dry-run mode.
	DryRun bool
	// Stores are the shops for template data and expressions (default
	// TestStore); Timezone is the zone of customers without one (UTC).
	Stores   []config.Store
	Timezone *time.Location
	// MaxBatchSize and MaxBatchDelay tune the store's group commit. The
	// harness runs one job at a time, so by default a batch of one commits
	// at once instead of waiting out the window for company that never
	// comes; MaxBatchSize < 0 keeps the store's defaults (production
	// behaviour, for benchmarks).
	MaxBatchSize  int
	MaxBatchDelay time.Duration
}

// NewHarness opens (or reopens) the store in opts.Dir and wires the rest.
func NewHarness(opts HarnessOptions) (*Harness, error) {
	if opts.Clock == nil {
		opts.Clock = clock.NewFake(DefaultStart)
	}
	if opts.Recorder == nil {
		opts.Recorder = NewRecorder(opts.Clock)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(opts.Stores) == 0 {
		opts.Stores = []config.Store{TestStore}
	}
	hold := opts.MaxBatchDelay
	if hold == 0 {
		hold = -1 // one job at a time: no company worth holding a group for
	}
	db, err := storage.Open(filepath.Join(opts.Dir, storage.FileName), storage.Options{Clock: opts.Clock, Logger: opts.Logger, NoSync: true, MaxBatchSize: batchSize(opts.MaxBatchSize), MaxBatchDelay: hold})
	if err != nil {
		return nil, fmt.Errorf("ruletest: %w", err)
	}
	// The rule set is read through the engine, so a caller's later
	// SetRules also changes the priorities the dispatcher sees.
	var eng *journey.Engine
	senders := opts.Recorder.Senders()
	if opts.Sender != nil {
		senders = map[string]connectors.Sender{"log": opts.Sender, "sendgrid": opts.Sender, "mailgun": opts.Sender}
	}
	disp, err := sending.New(db, senders, sending.Options{
		Policies:        opts.Policies,
		From:            connectors.Address{Email: "shop@example.com", Name: "Test Store"},
		PublicURL:       "http://nudge.example.com",
		TokenSecret:     []byte("ruletest secret"),
		Stores:          opts.Stores,
		Timezone:        opts.Timezone,
		DefaultProvider: "log",
		Clock:           opts.Clock,
		Logger:          opts.Logger,
		RulePriorityFunc: func(id string) (int, bool) {
			if r := eng.Rules().Rule(id); r != nil {
				return r.Priority, true
			}
			return 0, false
		},
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ruletest: %w", err)
	}
	sched := scheduler.New(db, scheduler.Options{Clock: opts.Clock, Logger: opts.Logger, Backoff: func(int) time.Duration { return time.Minute }})
	eng = journey.New(db, disp, journey.Options{
		Clock: opts.Clock, Logger: opts.Logger, Observers: []dispatch.Observer{disp},
		Stores: opts.Stores, Timezone: opts.Timezone, DryRun: opts.DryRun,
	})
	eng.SetRules(opts.Rules)
	disp.Register(sched)
	eng.Register(sched)
	return &Harness{Store: db, Clock: opts.Clock, Scheduler: sched, Engine: eng, Sending: disp, Recorder: opts.Recorder}, nil
}

func batchSize(n int) int {
	switch {
	case n == 0:
		return 1
	case n < 0:
		return 0 // the store's default
	}
	return n
}

// Recover returns jobs a crash left running to retryable and marks sends
// left "sending" unknown, as scheduler.Run does when it starts; RunUntil
// does not do it by itself.
func (h *Harness) Recover(ctx context.Context) (int, error) {
	return h.Scheduler.Recover(ctx)
}

// Close closes the store.
func (h *Harness) Close() error { return h.Store.Close() }

// Ingest stores records as a connector would, which enqueues their
// evaluation; RunUntil runs it.
func (h *Harness) Ingest(ctx context.Context, recs ...behavior.Record) error {
	if _, err := h.Store.Append(ctx, storage.Ingest{Records: recs}); err != nil {
		return fmt.Errorf("ruletest: ingest: %w", err)
	}
	return nil
}

// RunUntil advances the clock from job to job, running each when due,
// until no job is due at or before t; the clock ends at t (or stays, if
// already later). It returns how many jobs ran.
func (h *Harness) RunUntil(ctx context.Context, t time.Time) (int, error) {
	total := 0
	for {
		now := h.Clock.Now()
		n, err := h.Scheduler.RunDue(ctx, now)
		total += n
		if err != nil {
			return total, err
		}
		next, ok, err := h.Store.NextJobDue(ctx)
		if err != nil {
			return total, err
		}
		if !ok || next.After(t) {
			break
		}
		if next.After(now) {
			h.Clock.Set(next)
		} else if n == 0 {
			return total, errors.New("ruletest: a due job did not run")
		}
	}
	if t.After(h.Clock.Now()) {
		h.Clock.Set(t)
	}
	return total, nil
}

// Sent is one message that reached the provider, resolved through the
// outbox to its rule, step and recipient.
type Sent struct {
	At    time.Time
	Rule  string
	Step  int
	Email string
}

// Sends returns what the recorder received, resolved through the store,
// in time order.
func (h *Harness) Sends(ctx context.Context) ([]Sent, error) {
	var out []Sent
	for _, m := range h.Recorder.Messages() {
		s, err := h.Store.Send(ctx, m.Message.SendID)
		if err != nil {
			return nil, fmt.Errorf("ruletest: recorded message %s: %w", m.Message.SendID, err)
		}
		out = append(out, Sent{At: m.At, Rule: s.Rule, Step: s.Step, Email: behavior.NormalizeEmail(m.Message.To.Email)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}
