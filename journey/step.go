package journey

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
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
	h := fnv.New32a()
	h.Write([]byte(profileID))
	m := &e.locks[h.Sum32()%uint32(len(e.locks))]
	m.Lock()
	return m.Unlock
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
// (storage.CommitStep) and the send is delivered right after, outside the
// profile's lock; runStep then answers scheduler.Finished.
func (e *Engine) runStep(ctx context.Context, p StepPayload, jobID uint64) error {
	journeyID, n := p.JourneyID, p.Step
	j, unlockProfile, err := e.lockedJourney(ctx, journeyID, p.ProfileID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // forgotten
	}
	if err != nil {
		return fmt.Errorf("journey: step %d of %s: %w", n, journeyID, err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			unlockProfile()
		}
	}
	defer unlock()
	if !j.Active() || j.Step != n {
		return nil // ended, or this step already ran
	}
	now := e.now()
	r := e.set.Load().Rule(j.Rule)
	if r == nil {
		return e.end(ctx, &j, storage.JourneyExited, ReasonRuleRemoved, "", now)
	}
	if n < 1 || n > len(r.Steps) {
		return e.end(ctx, &j, storage.JourneyCompleted, fmt.Sprintf("the rule no longer has a step %d", n), "", now)
	}
	step := r.Steps[n-1]
	prof, err := e.store.Profile(ctx, j.ProfileID)
	if errors.Is(err, storage.ErrNotFound) {
		return e.end(ctx, &j, storage.JourneyExited, "profile forgotten", "", now)
	}
	if err != nil {
		return fmt.Errorf("journey: step %d of %s: %w", n, journeyID, err)
	}
	trig, err := e.store.Record(ctx, j.TriggerRecord)
	if errors.Is(err, storage.ErrNotFound) {
		return e.end(ctx, &j, storage.JourneyExited, "trigger record no longer stored", j.TriggerRecord, now)
	}
	if err != nil {
		return fmt.Errorf("journey: step %d of %s: %w", n, journeyID, err)
	}

	// An exit stored since the trigger but not evaluated yet (its job
	// queued behind others under load, or due at this same instant) must
	// still win over the step.
	if x := e.earlyExit(ctx, r, &trig, prof, now); x != nil {
		return e.end(ctx, &j, storage.JourneyExited, "exit: "+string(x.Kind), fmt.Sprintf("record %s at %s", x.ID, x.At.Format(time.RFC3339)), now)
	}

	env := e.newEnv(ctx, &trig, &trig, prof, now, n)
	ok, err := step.Where.Bool(&env)
	if err != nil {
		// A failing expression fails the same way on every retry.
		e.opts.Logger.Warn("step where failed", "rule", r.ID, "journey_id", j.ID, "step", n, "error", err)
		return e.end(ctx, &j, storage.JourneyExited, fmt.Sprintf("steps[%d].where failed", n), err.Error(), now)
	}
	if !ok {
		return e.end(ctx, &j, storage.JourneyExited, fmt.Sprintf("steps[%d].where is false", n), step.Where.Source, now)
	}
	data := make(map[string]any, len(step.Send.Data))
	for _, f := range step.Send.Data {
		v, err := f.Expr.Eval(&env)
		if err != nil {
			e.opts.Logger.Warn("send data failed", "rule", r.ID, "journey_id", j.ID, "step", n, "error", err)
			return e.end(ctx, &j, storage.JourneyExited, fmt.Sprintf("steps[%d].send.data.%s failed", n, f.Key), err.Error(), now)
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
		return fmt.Errorf("journey: dispatch step %d of %s: %w", n, journeyID, err)
	}
	out := plan.Outcome
	// commit writes the journey as moved on, with the planned send and the
	// end of the step's job when folded.
	commit := func(next []storage.JobSpec) error {
		if !folded {
			return e.store.PutJourney(ctx, j, next...)
		}
		sent, created, err := e.store.CommitStep(ctx, storage.StepCommit{
			Journey: j, Jobs: next, Send: plan.Send, SendJobs: plan.SendJobs, CompleteJob: jobID,
		})
		if err != nil {
			return err
		}
		if len(plan.SendJobs) > 0 {
			e.wake() // the next step's job is the caller's to announce
		}
		unlock()
		if created && sent.Status == storage.SendSending {
			set := e.set.Load()
			evaluateSent := len(set.Triggered(behavior.EmailSent)) > 0 || set.HasExit(behavior.EmailSent)
			if err := planner.Deliver(ctx, sent, evaluateSent); err != nil {
				// The journey and the send are stored; the send stays
				// "sending" and becomes unknown at the next start.
				e.opts.Logger.Error("deliver failed", "rule", r.ID, "journey_id", j.ID, "step", n, "send_id", sent.ID, "error", err)
			}
		}
		return nil
	}
	// done is a committed step's answer to the scheduler: its job already
	// ended in the folded transaction.
	done := func() error {
		if folded && jobID != 0 {
			return scheduler.Finished()
		}
		return nil
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
			if err := commit(nil); err != nil {
				return fmt.Errorf("journey: complete %s: %w", j.ID, err)
			}
			return done()
		}
		due := e.dueAt(r.Steps[n], now, prof)
		j.Step = n + 1
		j.DueAt = due
		e.trace(&j, now, n+1, "scheduled", "due "+due.Format(time.RFC3339))
		if err := commit([]storage.JobSpec{stepJob(&j, n+1, due)}); err != nil {
			return fmt.Errorf("journey: schedule step %d of %s: %w", n+1, j.ID, err)
		}
		e.wake()
		return done()
	case dispatch.Deferred:
		until := out.Until
		if !until.After(now) {
			until = now.Add(time.Minute) // never spin on a deferral without a future time
		}
		e.trace(&j, now, n, "deferred", fmt.Sprintf("until %s: %s", until.Format(time.RFC3339), out.Reason))
		j.DueAt = until
		j.UpdatedAt = now
		if err := e.store.PutJourney(ctx, j); err != nil {
			return fmt.Errorf("journey: defer step %d of %s: %w", n, j.ID, err)
		}
		return scheduler.SnoozeUntil(until)
	case dispatch.Stopped:
		return e.end(ctx, &j, stoppedStatus(out.Reason), out.Reason, "", now)
	default:
		return fmt.Errorf("journey: dispatch step %d of %s: unknown action %q", n, j.ID, out.Action)
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
