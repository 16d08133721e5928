// Package journey runs rules: every stored record is matched against rule
// triggers and against the exits of its profile's active journeys; a
// journey's steps are durable "step" jobs on the scheduler; at due time a
// step re-checks its where clause against the fresh profile and hands the
// send to the dispatcher (the policy gate and outbox in package sending).
//
// Exactly once: a journey's id is derived from rule, profile and trigger
// record, so a replayed evaluation finds it; each step job has the unique
// key "step:<journey>:<n>"; a step's journey update and its next step job
// commit in one PutJourney transaction; and the dispatcher is idempotent
// per journey step. A crash at any point therefore resumes without a
// second journey, step or send.
package journey

import (
	"context"
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/keylock"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

// JobStep is the job kind of a journey step; its payload is StepPayload.
const JobStep = "step"

// StepPayload is the payload of a JobStep job.
type StepPayload struct {
	JourneyID string `json:"journey_id"`
	Step      int    `json:"step"`
	// ProfileID is the journey's profile when the job was enqueued: the
	// step locks it before its one read of the journey. Jobs enqueued
	// before it existed, or whose profile was merged away since, read
	// the journey once more.
	ProfileID string `json:"profile_id,omitempty"`
}

// StepKey is the unique key of a journey step's job.
func StepKey(journeyID string, step int) string {
	return "step:" + journeyID + ":" + strconv.Itoa(step)
}

// Defaults of Options.
const (
	DefaultMaxTriggerAge = 24 * time.Hour
	DefaultFanOutWindow  = 30 * 24 * time.Hour
	// maxTrace bounds a journey's trace; a step deferred again and again
	// by the frequency cap must not grow it without limit.
	maxTrace = 100
)

// Recommender supplies products for recommend() in expressions. It has
// the same shape as sending.Recommender, so one value serves both.
type Recommender interface {
	Recommend(ctx context.Context, profileID string, n int) ([]storage.Product, error)
}

// Options configure an Engine.
type Options struct {
	Clock  clock.Clock  // default clock.Real
	Logger *slog.Logger // default slog.Default()
	// Observers see every record (attribution, engagement, insights), in
	// order, before the rules do: when one fails, the evaluation's job is
	// retried instead of ending with the journeys it started.
	Observers []dispatch.Observer
	// Recommender backs recommend(); nil gives empty lists.
	Recommender Recommender
	// BestHourFunc returns a profile's best local send hour (0–23);
	// default: the profile's "best_hour" score when present.
	BestHourFunc func(p storage.Profile) (int, bool)
	// Stores name the shops for the store variable of expressions.
	Stores []config.Store
	// Timezone is the zone of profiles without one (default UTC).
	Timezone *time.Location
	// MaxTriggerAge: a record that occurred longer ago than this when it
	// is evaluated starts no journey (default 24h), so importing last
	// year's abandoned checkouts does not mail anyone about them.
	MaxTriggerAge time.Duration
	// FanOutWindow: price_dropped and back_in_stock records, which belong
	// to a product and not a person, are evaluated for every profile that
	// viewed the product or put it in a cart within this window (default 30d).
	FanOutWindow time.Duration
	// DryRun marks every dispatch as a dry run (StepSend.DryRun).
	DryRun bool
}

// Engine matches records against rules and runs journeys. It is safe for
// concurrent use; the rule set is swapped atomically.
type Engine struct {
	store storage.Store
	disp  dispatch.Dispatcher
	opts  Options
	set   atomic.Pointer[rules.Set]
	sched atomic.Pointer[scheduler.Scheduler]
	// locks hold one lock per profile id (see lockProfile); a batch of
	// due steps holds one per profile of the batch.
	locks keylock.Locks
}

// New returns an engine with an empty rule set; call SetRules or Reload.
func New(store storage.Store, d dispatch.Dispatcher, opts Options) *Engine {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timezone == nil {
		opts.Timezone = time.UTC
	}
	if opts.MaxTriggerAge <= 0 {
		opts.MaxTriggerAge = DefaultMaxTriggerAge
	}
	if opts.FanOutWindow <= 0 {
		opts.FanOutWindow = DefaultFanOutWindow
	}
	if opts.BestHourFunc == nil {
		opts.BestHourFunc = scoreBestHour
	}
	e := &Engine{store: store, disp: d, opts: opts}
	empty, _ := rules.NewSet()
	e.set.Store(empty)
	return e
}

// scoreBestHour reads the "best_hour" score insights writes.
func scoreBestHour(p storage.Profile) (int, bool) {
	h, ok := p.Scores["best_hour"]
	if !ok || h < 0 || h >= 24 {
		return 0, false
	}
	return int(h), true
}

// Rules returns the current rule set.
func (e *Engine) Rules() *rules.Set { return e.set.Load() }

// SetRules swaps the rule set atomically. Journeys of rules no longer in
// the set end with "rule removed" when they next act (their next step job
// or an evaluation of their profile); Reload ends them at once.
func (e *Engine) SetRules(set *rules.Set) {
	if set == nil {
		set, _ = rules.NewSet()
	}
	e.set.Store(set)
}

// Register installs the engine's job handlers ("evaluate" and "step") on
// the scheduler and lets the engine wake it when it enqueues work.
func (e *Engine) Register(s *scheduler.Scheduler) {
	e.sched.Store(s)
	s.Handle(storage.JobEvaluate, func(ctx context.Context, j storage.Job) error {
		var p storage.EvaluatePayload
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			return scheduler.Cancel(fmt.Errorf("journey: evaluate payload: %w", err))
		}
		return e.evaluate(ctx, p.RecordID, p.ProfileID, j.ID)
	})
	// Steps run in batches: steps due together commit together.
	s.HandleBatch(JobStep, e.runSteps)
}

func (e *Engine) wake() {
	if s := e.sched.Load(); s != nil {
		s.Wake()
	}
}

func (e *Engine) now() time.Time { return e.opts.Clock.Now().UTC() }

// stepJob is the durable job for one step of a journey.
func stepJob(j *storage.Journey, step int, due time.Time) storage.JobSpec {
	payload, _ := json.Marshal(StepPayload{JourneyID: j.ID, Step: step, ProfileID: j.ProfileID}) // plain struct: cannot fail
	return storage.JobSpec{Kind: JobStep, UniqueKey: StepKey(j.ID, step), Payload: payload, DueAt: due}
}

// JourneyID is the id of the journey a trigger record occurring at at
// starts for a profile in a rule: deterministic, so a replayed evaluation
// finds it, and ordered by at (behavior.DeriveOrderedID). A step falls due
// a wait after its journey's start, so the journeys whose steps fall due
// together were mostly started together: with ordered ids the journeys,
// sends and email_sent records one batch of due steps writes share a few
// pages of the store, where hashed ids dirtied a page each (bench/sched:
// 13 → 7 pages and 2,800 → 4,900 steps/s).
func JourneyID(ruleID, profileID, recordID string, at time.Time) string {
	return behavior.DeriveOrderedID(at, "journey", ruleID, profileID, recordID)
}

// Evaluate matches one stored record: it ends the profile's journeys the
// record exits or suppresses, starts journeys of the rules it triggers,
// and then tells the observers. Product records without a profile
// (price_dropped, back_in_stock) are evaluated for every profile that
// viewed or carted the product within FanOutWindow. Evaluate is
// idempotent, as a job handler must be.
func (e *Engine) Evaluate(ctx context.Context, recordID, profileID string) error {
	return e.evaluate(ctx, recordID, profileID, 0)
}

// evaluate is Evaluate for the evaluation job jobID (0: none). With a
// store that commits evaluations (storage.DB), the journeys a profile's
// evaluation starts, its decisions and the job's end are one transaction;
// evaluate then answers scheduler.Finished. The observers run first, so
// that when one fails the job is not ended with the journeys but retried
// (a replayed evaluation starts nothing twice).
func (e *Engine) evaluate(ctx context.Context, recordID, profileID string, jobID uint64) error {
	rec, err := e.store.Record(ctx, recordID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // forgotten or pruned since
	}
	if err != nil {
		return fmt.Errorf("journey: evaluate %s: %w", recordID, err)
	}
	set := e.set.Load()
	now := e.now()
	var prof storage.Profile
	if profileID != "" {
		prof, err = e.store.Profile(ctx, profileID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("journey: evaluate %s: %w", recordID, err)
		}
	}
	var errs []error
	for _, o := range e.opts.Observers {
		if err := o.Observe(ctx, rec, prof); err != nil {
			errs = append(errs, err)
		}
	}
	observeErr := errors.Join(errs...)
	complete := jobID
	if observeErr != nil {
		complete = 0
	}
	finished := false
	if profileID != "" {
		if finished, err = e.evaluateProfile(ctx, set, &rec, prof, now, complete); err != nil {
			return err
		}
	} else if rec.Kind == behavior.PriceDropped || rec.Kind == behavior.BackInStock {
		if err := e.fanOut(ctx, set, &rec, now); err != nil {
			return err
		}
	}
	if observeErr != nil {
		return fmt.Errorf("journey: observe %s: %w", recordID, observeErr)
	}
	if finished {
		return scheduler.Finished()
	}
	return nil
}

// fanOut evaluates a product record for the profiles interested in it.
func (e *Engine) fanOut(ctx context.Context, set *rules.Set, rec *behavior.Record, now time.Time) error {
	if len(set.Triggered(rec.Kind)) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, pid := range behavior.ProductIDs(rec.Items) {
		ids, err := e.store.ProfilesByProduct(ctx, pid, []behavior.Kind{behavior.ProductViewed, behavior.CartUpdated}, now.Add(-e.opts.FanOutWindow))
		if err != nil {
			return fmt.Errorf("journey: fan out %s: %w", rec.ID, err)
		}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			prof, err := e.store.Profile(ctx, id)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("journey: fan out %s: %w", rec.ID, err)
			}
			if _, err := e.evaluateProfile(ctx, set, rec, prof, now, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// evaluateProfile applies one record to one profile. With completeJob it
// ends that job in the transaction that starts the record's journeys and
// reports finished.
func (e *Engine) evaluateProfile(ctx context.Context, set *rules.Set, rec *behavior.Record, prof storage.Profile, now time.Time, completeJob uint64) (finished bool, err error) {
	triggered := set.Triggered(rec.Kind)
	reason, suppresses := rec.Suppresses()
	// Journeys of removed rules also end when their profile is evaluated,
	// but that is cleanup, not a reason to read every profile's journeys.
	if len(triggered) == 0 && !suppresses && !set.HasExit(rec.Kind) {
		return false, nil
	}
	unlock := e.lockProfile(prof.ID)
	defer unlock()
	// Only active journeys are written back (ended, or traced): the ended
	// ones come without their traces, which evaluation never reads.
	journeys, err := e.store.JourneysByProfileUntraced(ctx, prof.ID)
	if err != nil {
		return false, fmt.Errorf("journey: evaluate %s: %w", rec.ID, err)
	}
	var env *rules.Env // built once, shared by every rule
	getEnv := func() *rules.Env {
		if env == nil {
			v := e.newEnv(ctx, rec, rec, prof, now, 0)
			env = &v
		}
		return env
	}

	for i := range journeys {
		j := &journeys[i]
		if !j.Active() {
			continue
		}
		if suppresses {
			detail := fmt.Sprintf("%s (%s record %s)", reason, rec.Kind, rec.ID)
			if err := e.end(ctx, j, storage.JourneySuppressed, "suppressed: "+reason, detail, now); err != nil {
				return false, err
			}
			continue
		}
		r := set.Rule(j.Rule)
		if r == nil {
			if err := e.end(ctx, j, storage.JourneyExited, ReasonRuleRemoved, "", now); err != nil {
				return false, err
			}
			continue
		}
		if rec.ID == j.TriggerRecord || rec.At.Before(j.StartedAt) {
			continue // exits count only after the trigger
		}
		for xi, x := range r.Exits {
			if x.Event != rec.Kind {
				continue
			}
			ok, err := e.exitMatches(ctx, x, rec, j, prof, now)
			if err != nil {
				// A broken exit must not end the journey silently, nor be
				// lost: it goes on the trace for explain.
				e.opts.Logger.Warn("exit where failed", "rule", r.ID, "journey_id", j.ID, "error", err)
				e.trace(j, now, j.Step, "exit_error", fmt.Sprintf("exit[%d].where: %v", xi+1, err))
				j.UpdatedAt = now
				if err := e.store.PutJourney(ctx, *j); err != nil {
					return false, fmt.Errorf("journey: trace %s: %w", j.ID, err)
				}
				continue
			}
			if !ok {
				continue
			}
			reason := "exit: " + string(rec.Kind)
			if err := e.end(ctx, j, storage.JourneyExited, reason, fmt.Sprintf("record %s at %s", rec.ID, rec.At.Format(time.RFC3339)), now); err != nil {
				return false, err
			}
			break
		}
	}
	if suppresses {
		return false, nil
	}
	var decisions []storage.Decision
	var starts []storage.JourneyStart
	for _, r := range triggered {
		d, start, started := e.maybeStart(ctx, r, rec, prof, journeys, now, getEnv)
		if start != nil {
			starts = append(starts, *start)
		}
		if started || d.Reason != "" {
			decisions = append(decisions, d)
		}
	}
	return e.commitEvaluation(ctx, prof.ID, starts, decisions, completeJob)
}

// evaluationCommitter is implemented by stores that write an evaluation's
// journeys, decisions and job end in one transaction (storage.DB).
type evaluationCommitter interface {
	CommitEvaluation(ctx context.Context, c storage.EvaluationCommit) error
}

// commitEvaluation writes what evaluateProfile decided; it reports whether
// completeJob ended with it.
func (e *Engine) commitEvaluation(ctx context.Context, profileID string, starts []storage.JourneyStart, decisions []storage.Decision, completeJob uint64) (bool, error) {
	finished := false
	if c, ok := e.store.(evaluationCommitter); ok {
		err := c.CommitEvaluation(ctx, storage.EvaluationCommit{ProfileID: profileID, Starts: starts, Decisions: decisions, CompleteJob: completeJob})
		if err != nil {
			return false, fmt.Errorf("journey: evaluate for %s: %w", profileID, err)
		}
		finished = completeJob != 0
	} else {
		for _, s := range starts {
			if err := e.store.PutJourney(ctx, s.Journey, s.Jobs...); err != nil {
				return false, fmt.Errorf("journey: start %s: %w", s.Journey.Rule, err)
			}
		}
		if err := e.appendDecisions(ctx, profileID, decisions); err != nil {
			return false, err
		}
	}
	for _, s := range starts {
		e.opts.Logger.Debug("journey started", "rule", s.Journey.Rule, "journey_id", s.Journey.ID, "record_id", s.Journey.TriggerRecord, "holdout", s.Journey.Holdout)
	}
	if len(starts) > 0 {
		e.wake()
	}
	return finished, nil
}

// decisionBatcher is implemented by stores that write many decisions in
// one transaction (storage.DB); one evaluation makes one per rule.
type decisionBatcher interface {
	AppendDecisions(ctx context.Context, profileID string, ds ...storage.Decision) error
}

func (e *Engine) appendDecisions(ctx context.Context, profileID string, ds []storage.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	if b, ok := e.store.(decisionBatcher); ok {
		if err := b.AppendDecisions(ctx, profileID, ds...); err != nil {
			return fmt.Errorf("journey: decisions: %w", err)
		}
		return nil
	}
	for _, d := range ds {
		if err := e.store.AppendDecision(ctx, profileID, d); err != nil {
			return fmt.Errorf("journey: decisions: %w", err)
		}
	}
	return nil
}

// earlyExit returns a stored record, at or after rec (a journey's
// trigger), that matches one of the rule's exits: one that came before the
// trigger (webhooks come out of order: a refund before its order after a
// store's retries, Stripe's events in any order) or whose evaluation has
// not run yet when a step comes due. The journey must not start, or the
// step not send. nil when there is none, or the lookup fails (logged: the
// journey goes on, as it did before the check).
func (e *Engine) earlyExit(ctx context.Context, r *rules.Rule, rec *behavior.Record, prof storage.Profile, now time.Time) *behavior.Record {
	var kinds []behavior.Kind
	for _, x := range r.Exits {
		if !slices.Contains(kinds, x.Event) {
			kinds = append(kinds, x.Event)
		}
	}
	if len(kinds) == 0 {
		return nil
	}
	later, err := e.store.RecordsByProfile(ctx, prof.ID, storage.RecordQuery{Since: rec.At, Kinds: kinds})
	if err != nil {
		e.opts.Logger.Warn("exits before the trigger not checked", "rule", r.ID, "record_id", rec.ID, "error", err)
		return nil
	}
	probe := storage.Journey{Rule: r.ID, ProfileID: prof.ID, TriggerRecord: rec.ID}
	for i := range later {
		x := &later[i]
		if x.ID == rec.ID || x.At.Before(rec.At) {
			continue
		}
		for _, ex := range r.Exits {
			if ex.Event != x.Kind {
				continue
			}
			if ok, err := e.exitMatches(ctx, ex, x, &probe, prof, now); err == nil && ok {
				return x
			}
		}
	}
	return nil
}

func (e *Engine) exitMatches(ctx context.Context, x rules.Exit, rec *behavior.Record, j *storage.Journey, prof storage.Profile, now time.Time) (bool, error) {
	if x.Where == nil {
		return true, nil
	}
	trig, err := e.store.Record(ctx, j.TriggerRecord)
	if err != nil {
		trig = *rec // the trigger is gone (pruned); the record stands in for it
	}
	env := e.newEnv(ctx, rec, &trig, prof, now, 0)
	return x.Where.Bool(&env)
}

// Reasons the engine gives for ending journeys and declining triggers.
const (
	ReasonRuleRemoved = "rule removed"
	ReasonStarted     = "started"
	ReasonHoldout     = "started in holdout (control group: recorded, never sent)"
)

// maybeStart decides whether the record starts the rule's journey for the
// profile (no limit or trigger where clause says no) and returns the
// decision for explain and, when it does, the journey to write with its
// first step's job. A replayed evaluation decides "started" again with
// no journey to write. Decisions are stamped with the record's time, so a
// replayed evaluation's decisions dedupe in the store.
func (e *Engine) maybeStart(ctx context.Context, r *rules.Rule, rec *behavior.Record, prof storage.Profile, journeys []storage.Journey, now time.Time, env func() *rules.Env) (storage.Decision, *storage.JourneyStart, bool) {
	id := JourneyID(r.ID, prof.ID, rec.ID, rec.At)
	decide := func(started bool, reason string) (storage.Decision, *storage.JourneyStart, bool) {
		d := storage.Decision{At: rec.At, Rule: r.ID, RecordID: rec.ID, Started: started, Reason: reason}
		if started {
			d.JourneyID = id
		}
		return d, nil, started
	}
	var last, active *storage.Journey
	for i := range journeys {
		j := &journeys[i]
		if j.Rule != r.ID {
			continue
		}
		if j.ID == id || j.TriggerRecord == rec.ID {
			// A replayed evaluation: this record already started it. The
			// decision is written again in case the crash came between
			// the journey and its decision; the store dedupes it. The
			// trigger record also finds a journey whose id was made
			// before ids were ordered by time (or before the profile it
			// belongs to absorbed another in a merge).
			id = j.ID
			reason := ReasonStarted
			if j.Holdout {
				reason = ReasonHoldout
			}
			return decide(true, reason)
		}
		if j.Active() {
			active = j
		}
		if last == nil || j.StartedAt.After(last.StartedAt) {
			last = j
		}
	}
	if age := now.Sub(rec.At); age > e.opts.MaxTriggerAge {
		return decide(false, fmt.Sprintf("record is %s old, older than the %s a trigger may be", age.Round(time.Second), e.opts.MaxTriggerAge))
	}
	if active != nil {
		return decide(false, fmt.Sprintf("already in journey %s (step %d due %s)", active.ID, active.Step, active.DueAt.Format(time.RFC3339)))
	}
	if last != nil && r.Limits.ReenterAfter > 0 && rec.At.Before(last.StartedAt.Add(r.Limits.ReenterAfter)) {
		return decide(false, fmt.Sprintf("limits.reenter_after %s: journey %s started %s", config.Duration(r.Limits.ReenterAfter), last.ID, last.StartedAt.Format(time.RFC3339)))
	}
	ok, err := r.Trigger.Where.Bool(env())
	if err != nil {
		e.opts.Logger.Warn("trigger where failed", "rule", r.ID, "record_id", rec.ID, "error", err)
		return decide(false, "trigger.where failed: "+err.Error())
	}
	if !ok {
		return decide(false, "trigger.where is false: "+r.Trigger.Where.Source)
	}
	if x := e.earlyExit(ctx, r, rec, prof, now); x != nil {
		return decide(false, fmt.Sprintf("exit: %s (record %s at %s arrived before its trigger)", x.Kind, x.ID, x.At.Format(time.RFC3339)))
	}

	start := rec.At
	if start.After(now) {
		start = now
	}
	holdout := InHoldout(r.ID, prof.ID, r.Holdout)
	due := e.dueAt(r.Steps[0], start, prof)
	j := storage.Journey{
		ID: id, Rule: r.ID, ProfileID: prof.ID, TriggerRecord: rec.ID, Step: 1,
		Status: storage.JourneyWaiting, Holdout: holdout, StartedAt: start, DueAt: due, UpdatedAt: now,
	}
	reason := ReasonStarted
	if holdout {
		reason = ReasonHoldout
	}
	e.trace(&j, now, 0, "started", fmt.Sprintf("%s record %s", rec.Kind, rec.ID))
	if holdout {
		e.trace(&j, now, 0, "holdout", fmt.Sprintf("in the %.0f%% control group of %s", r.Holdout*100, r.ID))
	}
	e.trace(&j, now, 1, "scheduled", "due "+due.Format(time.RFC3339))
	d, _, _ := decide(true, reason)
	return d, &storage.JourneyStart{Journey: j, Jobs: []storage.JobSpec{stepJob(&j, 1, due)}}, true
}

// dueAt is when a step is due after base: base plus the wait, then, for
// wait_until_best_hour, the next start of the profile's best hour in
// their zone (within 24 h); without a best hour the plain wait applies.
func (e *Engine) dueAt(s rules.Step, base time.Time, p storage.Profile) time.Time {
	due := base.Add(s.Wait)
	if !s.BestHour {
		return due
	}
	h, ok := e.opts.BestHourFunc(p)
	if !ok {
		return due
	}
	loc := e.opts.Timezone
	if z := p.Zone(); z != "" {
		if l, err := time.LoadLocation(z); err == nil {
			loc = l
		}
	}
	local := due.In(loc)
	at := time.Date(local.Year(), local.Month(), local.Day(), h, 0, 0, 0, loc)
	if at.Before(local) {
		at = time.Date(local.Year(), local.Month(), local.Day()+1, h, 0, 0, 0, loc)
	}
	return at.UTC()
}

// trace appends to a journey's explain trace, dropping the oldest entries
// after the first (the start) beyond maxTrace.
func (e *Engine) trace(j *storage.Journey, at time.Time, step int, action, detail string) {
	j.Trace = append(j.Trace, storage.TraceEntry{At: at, Step: step, Action: action, Detail: detail})
	if over := len(j.Trace) - maxTrace; over > 0 {
		j.Trace = append(j.Trace[:1], j.Trace[1+over:]...)
	}
}

// end finishes a journey with a status and reason and cancels its pending
// step job (the job would find the journey ended anyway; cancelling keeps
// the queue clean).
func (e *Engine) end(ctx context.Context, j *storage.Journey, status, reason, detail string, now time.Time) error {
	j.Status = status
	j.Reason = reason
	j.UpdatedAt = now
	j.DueAt = time.Time{}
	d := reason
	if detail != "" {
		d += ": " + detail
	}
	e.trace(j, now, j.Step, status, d)
	if err := e.store.PutJourney(ctx, *j); err != nil {
		return fmt.Errorf("journey: end %s: %w", j.ID, err)
	}
	if _, err := e.store.CancelJobs(ctx, StepKey(j.ID, j.Step)); err != nil {
		e.opts.Logger.Warn("cancel step job failed", "journey_id", j.ID, "error", err)
	}
	return nil
}
