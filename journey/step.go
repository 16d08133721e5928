package journey

import (
	"context"
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"slices"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

// lockProfile serialises work on one profile's journeys inside this
// process (bbolt allows one writing process), so an exit evaluated while
// a step runs cannot be overwritten by the step's update.
func (e *Engine) lockProfile(profileID string) func() {
	return e.locks.Lock(profileID)
}

// RunStep runs step n of a journey if the journey is still waiting for
// it: it re-evaluates the step's where clause against the fresh profile,
// dispatches the send and moves the journey on according to the outcome.
// It is idempotent: a replay after a crash finds the journey moved on, or
// re-dispatches, which the dispatcher answers from the existing send.
func (e *Engine) RunStep(ctx context.Context, journeyID string, n int) error {
	return e.runStep(ctx, StepPayload{JourneyID: journeyID, Step: n}, 0)
}

// runStep is RunStep for the step job jobID. With a dispatch.Planner the
// send, the journey's move and the job's end commit in one transaction
// (storage.CommitSteps) and the send is delivered right after, outside the
// profile's lock; runStep then answers scheduler.Finished.
func (e *Engine) runStep(ctx context.Context, p StepPayload, jobID uint64) error {
	journeyID, n := p.JourneyID, p.Step
	j, unlock, err := e.lockedJourney(ctx, journeyID, p.ProfileID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // forgotten
	}
	if err != nil {
		return fmt.Errorf("journey: step %d of %s: %w", n, journeyID, err)
	}
	if !j.Active() || j.Step != n {
		unlock()
		return nil // ended, or this step already ran
	}
	f, err := e.prepareStep(ctx, j, n, jobID)
	if f == nil || err != nil {
		unlock()
		return err
	}
	res, err := e.store.CommitSteps(ctx, []storage.StepCommit{f.commit})
	unlock()
	if err != nil {
		return fmt.Errorf("journey: %s: %w", f.what, err)
	}
	e.afterCommit(ctx, []*foldedStep{f}, res)
	return f.answer()
}

// runSteps runs a batch of due step jobs (the scheduler's batch handler):
// every step is prepared under its profile's lock as runStep would, and
// those whose outcome folds into one transaction commit together in one
// storage.CommitSteps, so a batch of steps due together costs one write
// instead of one each. A profile's second step in a batch, and a job
// whose journey has moved to another profile, run alone afterwards: the
// second step's gate (frequency cap, priority) must see the first's send.
func (e *Engine) runSteps(ctx context.Context, jobs []storage.Job) []error {
	errs := make([]error, len(jobs))
	payloads := make([]StepPayload, len(jobs))
	var batch, solo []int
	profiles := map[string]bool{}
	for i, job := range jobs {
		if err := json.Unmarshal(job.Payload, &payloads[i]); err != nil {
			errs[i] = scheduler.Cancel(fmt.Errorf("journey: step payload: %w", err))
			continue
		}
		pid := payloads[i].ProfileID
		if len(jobs) == 1 || pid == "" || profiles[pid] {
			solo = append(solo, i)
			continue
		}
		profiles[pid] = true
		batch = append(batch, i)
	}
	if len(batch) > 0 {
		solo = append(solo, e.runStepBatch(ctx, jobs, payloads, batch, errs)...)
		slices.Sort(solo) // in due order
	}
	for _, i := range solo {
		errs[i] = e.runStep(ctx, payloads[i], jobs[i].ID)
	}
	return errs
}

// runStepBatch runs the jobs at idx (of distinct profiles) under their
// profiles' locks, setting their answers in errs; it returns the jobs it
// left to run alone.
func (e *Engine) runStepBatch(ctx context.Context, jobs []storage.Job, payloads []StepPayload, idx []int, errs []error) (solo []int) {
	pids := make([]string, len(idx))
	for k, i := range idx {
		pids[k] = payloads[i].ProfileID
	}
	unlock := e.locks.LockAll(pids)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	var folded []*foldedStep
	var at []int // the job of each folded step
	for _, i := range idx {
		p := payloads[i]
		j, err := e.store.Journey(ctx, p.JourneyID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue // forgotten
		case err != nil:
			errs[i] = fmt.Errorf("journey: step %d of %s: %w", p.Step, p.JourneyID, err)
			continue
		case j.ProfileID != p.ProfileID:
			solo = append(solo, i) // merged into another profile since: not locked here
			continue
		case !j.Active() || j.Step != p.Step:
			continue // ended, or this step already ran
		}
		f, err := e.prepareStep(ctx, j, p.Step, jobs[i].ID)
		if f == nil || err != nil {
			errs[i] = err
			continue
		}
		folded = append(folded, f)
		at = append(at, i)
	}
	if len(folded) == 0 {
		return solo
	}
	cs := make([]storage.StepCommit, len(folded))
	for k, f := range folded {
		cs[k] = f.commit
	}
	res, err := e.store.CommitSteps(ctx, cs)
	unlock()
	locked = false
	if err != nil {
		// Nothing of the batch is written; each step runs again alone,
		// so one bad step cannot hold back the others.
		e.opts.Logger.Warn("step batch failed, running its steps one by one", "steps", len(folded), "error", err)
		return append(solo, at...)
	}
	e.afterCommit(ctx, folded, res)
	for k, i := range at {
		errs[i] = folded[k].answer()
	}
	return solo
}

// foldedStep is a due step whose outcome commits in one transaction
// (storage.StepCommit): prepared under its profile's lock, committed by
// the caller, then delivered after the lock is released.
type foldedStep struct {
	commit  storage.StepCommit
	rule    string
	n       int
	what    string // for errors: what the commit does
	planner dispatch.Planner
}

// answer is a committed step's answer to the scheduler: its job already
// ended in the step's transaction.
func (f *foldedStep) answer() error {
	if f.commit.CompleteJob != 0 {
		return scheduler.Finished()
	}
	return nil
}

// afterCommit announces the jobs committed steps enqueued and delivers
// the sends they created, all of a batch at once when the planner can.
func (e *Engine) afterCommit(ctx context.Context, folded []*foldedStep, res []storage.StepResult) {
	e.wake() // a next step's job, or a send's
	var sends []storage.Send
	var steps []*foldedStep
	for k, f := range folded {
		if res[k].Created && res[k].Send.Status == storage.SendSending {
			sends = append(sends, res[k].Send)
			steps = append(steps, f)
		}
	}
	if len(sends) == 0 {
		return
	}
	set := e.set.Load()
	evaluateSent := len(set.Triggered(behavior.EmailSent)) > 0 || set.HasExit(behavior.EmailSent)
	var errs []error
	if all, ok := steps[0].planner.(dispatch.BatchPlanner); ok && len(sends) > 1 {
		errs = all.DeliverAll(ctx, sends, evaluateSent)
	} else {
		errs = make([]error, len(sends))
		for k, s := range sends {
			errs[k] = steps[k].planner.Deliver(ctx, s, evaluateSent)
		}
	}
	for k, err := range errs {
		if err != nil {
			// The journey and the send are stored; the send stays
			// "sending" and becomes unknown at the next start.
			f := steps[k]
			e.opts.Logger.Error("deliver failed", "rule", f.rule, "journey_id", f.commit.Journey.ID, "step", f.n, "send_id", sends[k].ID, "error", err)
		}
	}
}

// prepareStep runs step n of journey j, read under its profile's lock,
// up to its write. An outcome that folds into one transaction (the
// planner's send, the journey moved on, the job's end) comes back as a
// foldedStep for the caller to commit; any other is written here and
// comes back as the job's answer.
func (e *Engine) prepareStep(ctx context.Context, j storage.Journey, n int, jobID uint64) (*foldedStep, error) {
	journeyID := j.ID
	now := e.now()
	r := e.set.Load().Rule(j.Rule)
	if r == nil {
		return nil, e.end(ctx, &j, storage.JourneyExited, ReasonRuleRemoved, "", now)
	}
	if n < 1 || n > len(r.Steps) {
		return nil, e.end(ctx, &j, storage.JourneyCompleted, fmt.Sprintf("the rule no longer has a step %d", n), "", now)
	}
	step := r.Steps[n-1]
	prof, err := e.store.Profile(ctx, j.ProfileID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, e.end(ctx, &j, storage.JourneyExited, "profile forgotten", "", now)
	}
	if err != nil {
		return nil, fmt.Errorf("journey: step %d of %s: %w", n, journeyID, err)
	}
	trig, err := e.store.Record(ctx, j.TriggerRecord)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, e.end(ctx, &j, storage.JourneyExited, "trigger record no longer stored", j.TriggerRecord, now)
	}
	if err != nil {
		return nil, fmt.Errorf("journey: step %d of %s: %w", n, journeyID, err)
	}

	// An exit stored since the trigger but not evaluated yet (its job
	// queued behind others under load, or due at this same instant) must
	// still win over the step.
	if x := e.earlyExit(ctx, r, &trig, prof, now); x != nil {
		return nil, e.end(ctx, &j, storage.JourneyExited, "exit: "+string(x.Kind), fmt.Sprintf("record %s at %s", x.ID, x.At.Format(time.RFC3339)), now)
	}

	env := e.newEnv(ctx, &trig, &trig, prof, now, n)
	ok, err := step.Where.Bool(&env)
	if err != nil {
		// A failing expression fails the same way on every retry.
		e.opts.Logger.Warn("step where failed", "rule", r.ID, "journey_id", j.ID, "step", n, "error", err)
		return nil, e.end(ctx, &j, storage.JourneyExited, fmt.Sprintf("steps[%d].where failed", n), err.Error(), now)
	}
	if !ok {
		return nil, e.end(ctx, &j, storage.JourneyExited, fmt.Sprintf("steps[%d].where is false", n), step.Where.Source, now)
	}
	data := make(map[string]any, len(step.Send.Data))
	for _, f := range step.Send.Data {
		v, err := f.Expr.Eval(&env)
		if err != nil {
			e.opts.Logger.Warn("send data failed", "rule", r.ID, "journey_id", j.ID, "step", n, "error", err)
			return nil, e.end(ctx, &j, storage.JourneyExited, fmt.Sprintf("steps[%d].send.data.%s failed", n, f.Key), err.Error(), now)
		}
		data[f.Key] = v
	}

	ss := dispatch.StepSend{
		Journey: j, Rule: r.ID, Step: n, Priority: r.Priority, OnCap: r.OnCap,
		Send: dispatch.SendSpec{
			Provider: step.Send.Provider, Template: step.Send.Template, Subject: step.Send.Subject,
			HTMLFile: step.Send.HTMLFile, TextFile: step.Send.TextFile, Data: data,
		},
		Trigger: trig, Profile: prof, Now: now, DryRun: e.opts.DryRun,
	}
	var plan dispatch.Plan
	planner, folded := e.disp.(dispatch.Planner)
	folded = folded && !e.opts.DryRun
	if folded {
		plan, err = planner.Plan(ctx, ss)
	} else {
		plan.Outcome, err = e.disp.Dispatch(ctx, ss)
	}
	if err != nil {
		return nil, fmt.Errorf("journey: dispatch step %d of %s: %w", n, journeyID, err)
	}
	out := plan.Outcome
	// commit writes the journey as moved on: folded, with the planned
	// send and the end of the step's job, by the caller.
	commit := func(next []storage.JobSpec, what string) (*foldedStep, error) {
		if !folded {
			if err := e.store.PutJourney(ctx, j, next...); err != nil {
				return nil, fmt.Errorf("journey: %s: %w", what, err)
			}
			e.wake()
			return nil, nil
		}
		return &foldedStep{
			commit: storage.StepCommit{
				Journey: j, Jobs: next, Send: plan.Send, SendJobs: plan.SendJobs, CompleteJob: jobID,
			},
			rule: r.ID, n: n, what: what, planner: planner,
		}, nil
	}

	switch out.Action {
	case dispatch.Queued, dispatch.Held, dispatch.Skipped:
		detail := out.Reason
		if out.SendID != "" {
			detail = strings.TrimSpace("send " + out.SendID + " " + detail)
		}
		e.trace(&j, now, n, string(out.Action), detail)
		j.UpdatedAt = now
		if n == len(r.Steps) {
			j.Status = storage.JourneyCompleted
			if j.Holdout {
				j.Status = storage.JourneyHeldOut
			}
			j.DueAt = time.Time{}
			e.trace(&j, now, n, j.Status, "")
			return commit(nil, "complete "+j.ID)
		}
		due := e.dueAt(r.Steps[n], now, prof)
		j.Step = n + 1
		j.DueAt = due
		e.trace(&j, now, n+1, "scheduled", "due "+due.Format(time.RFC3339))
		return commit([]storage.JobSpec{stepJob(&j, n+1, due)}, fmt.Sprintf("schedule step %d of %s", n+1, j.ID))
	case dispatch.Deferred:
		until := out.Until
		if !until.After(now) {
			until = now.Add(time.Minute) // never spin on a deferral without a future time
		}
		e.trace(&j, now, n, "deferred", fmt.Sprintf("until %s: %s", until.Format(time.RFC3339), out.Reason))
		j.DueAt = until
		j.UpdatedAt = now
		if err := e.store.PutJourney(ctx, j); err != nil {
			return nil, fmt.Errorf("journey: defer step %d of %s: %w", n, j.ID, err)
		}
		return nil, scheduler.SnoozeUntil(until)
	case dispatch.Stopped:
		return nil, e.end(ctx, &j, stoppedStatus(out.Reason), out.Reason, "", now)
	default:
		return nil, fmt.Errorf("journey: dispatch step %d of %s: unknown action %q", n, j.ID, out.Action)
	}
}

// lockedJourney reads a journey under its profile's lock (an evaluation
// may end it meanwhile), returning the unlock. With the profile id known
// beforehand that takes one read; otherwise, or when the journey has
// moved to another profile since (a merge), one read finds the profile
// and a second, under the lock, the journey as it stands.
func (e *Engine) lockedJourney(ctx context.Context, journeyID, profileID string) (storage.Journey, func(), error) {
	for range 3 {
		if profileID == "" {
			j, err := e.store.Journey(ctx, journeyID)
			if err != nil {
				return storage.Journey{}, nil, err
			}
			profileID = j.ProfileID
		}
		unlock := e.lockProfile(profileID)
		j, err := e.store.Journey(ctx, journeyID)
		if err != nil {
			unlock()
			return storage.Journey{}, nil, err
		}
		if j.ProfileID == profileID {
			return j, unlock, nil
		}
		unlock()
		profileID = j.ProfileID
	}
	return storage.Journey{}, nil, fmt.Errorf("journey %s keeps moving between profiles", journeyID)
}

// stoppedStatus tells a policy stop (consent, suppression: the person
// must not be mailed) from a relevance stop (bought, out of stock, price
// back up), which ends the journey as exited.
func stoppedStatus(reason string) string {
	r := strings.ToLower(reason)
	for _, w := range []string{"consent", "suppress", "unsubscri", "bounce", "spam", "complain"} {
		if strings.Contains(r, w) {
			return storage.JourneySuppressed
		}
	}
	return storage.JourneyExited
}
