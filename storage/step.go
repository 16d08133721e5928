package storage

import (
	"context"
	"fmt"
	json "github.com/goccy/go-json"

	bolt "go.etcd.io/bbolt"
)

// A due journey step used to take about seven write transactions in a
// row (the send, the journey, the step job's end, the send job's claim,
// "sending", "sent", the email_sent record, the send job's end), each
// waiting for its own group commit. The two calls below fold them into
// two: everything decided before the provider call, and everything
// learned from it.

// StepCommit is everything one journey step decides before the provider
// is called, written in one transaction.
type StepCommit struct {
	// Journey is the journey as it stands after the step (moved on,
	// completed or deferred).
	Journey Journey
	// Jobs are enqueued with the journey (the next step's job).
	Jobs []JobSpec
	// Send, when set, is created unless a send with its id exists (a
	// replayed step keeps the first one).
	Send *Send
	// SendJobs are enqueued only when Send is created.
	SendJobs []JobSpec
	// CompleteJob, when not zero, is a running job that ends as completed
	// in the same transaction: the step's own job, so a crash can never
	// leave the journey moved on with its job still to run, or the other
	// way round.
	CompleteJob uint64
}

// CommitStep writes a StepCommit atomically. It returns the send as stored
// and whether this call created it.
func (db *DB) CommitStep(ctx context.Context, c StepCommit) (Send, bool, error) {
	out, err := db.CommitSteps(ctx, []StepCommit{c})
	if err != nil {
		return Send{}, false, err
	}
	return out[0].Send, out[0].Created, nil
}

// StepResult is what CommitSteps did with one StepCommit.
type StepResult struct {
	// Send is the step's send as stored (zero without one).
	Send Send
	// Created says whether this call created Send.
	Created bool
}

// CommitSteps writes many StepCommits in one transaction: all or none.
// The scheduler hands due steps over in due order, and journeys, sends
// and email_sent records of steps due together have neighbouring keys,
// so one transaction for a batch dirties a few shared pages where one per
// step dirtied a page of each bucket each (bench/sched). Two commits must
// not name the same journey.
func (db *DB) CommitSteps(ctx context.Context, cs []StepCommit) ([]StepResult, error) {
	type encoded struct{ journey, send []byte }
	enc := make([]encoded, len(cs))
	sends := make([]Send, len(cs))
	seen := make(map[string]bool, len(cs))
	for i, c := range cs {
		j := c.Journey
		if j.ID == "" || j.Rule == "" || j.ProfileID == "" {
			return nil, fmt.Errorf("storage: commit step of %q: %w: id, rule and profile are required", j.ID, ErrInvalid)
		}
		if seen[j.ID] {
			return nil, fmt.Errorf("storage: commit step of %s: %w: the journey is in the batch twice", j.ID, ErrInvalid)
		}
		seen[j.ID] = true
		if c.Send != nil {
			sends[i] = *c.Send
			if err := validSend(sends[i]); err != nil {
				return nil, fmt.Errorf("storage: commit step of %s: %w", j.ID, err)
			}
			var err error
			if enc[i].send, err = db.encodeNewSend(&sends[i]); err != nil {
				return nil, fmt.Errorf("storage: commit step of %s: %w", j.ID, err)
			}
		}
		var err error
		if enc[i].journey, err = json.Marshal(j); err != nil {
			return nil, fmt.Errorf("storage: commit step of %s: %w", j.ID, err)
		}
	}
	out := make([]StepResult, len(cs))
	err := db.batch(ctx, func(tx *bolt.Tx) error {
		clear(out) // a retry of the group commit runs this again
		for i, c := range cs {
			if c.Send != nil {
				var err error
				if out[i].Send, out[i].Created, err = db.createSendTx(tx, sends[i], enc[i].send, nil); err != nil {
					return fmt.Errorf("step of %s: send: %w", c.Journey.ID, err)
				}
				if out[i].Created {
					if _, err := db.enqueueJobsTx(tx, c.SendJobs); err != nil {
						return fmt.Errorf("step of %s: send jobs: %w", c.Journey.ID, err)
					}
				}
			}
			if err := db.putJourneyTx(tx, c.Journey, enc[i].journey, c.Jobs); err != nil {
				return fmt.Errorf("step of %s: journey: %w", c.Journey.ID, err)
			}
			if err := db.completeJobTx(tx, c.CompleteJob); err != nil {
				return fmt.Errorf("step of %s: %w", c.Journey.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		if len(cs) == 1 {
			return nil, fmt.Errorf("storage: commit step of %s: %w", cs[0].Journey.ID, err)
		}
		return nil, fmt.Errorf("storage: commit %d steps: %w", len(cs), err)
	}
	return out, nil
}

// SendFinish is one send's FinishSend, for FinishSends.
type SendFinish struct {
	// Send replaces the stored send with its id.
	Send Send
	// Ingest holds the send's email_sent record, when it went out.
	Ingest Ingest
	// Jobs are enqueued with it.
	Jobs []JobSpec
}

// FinishSend replaces the send with s.ID, appends in (the email_sent
// record of a send that went out) and enqueues jobs, in one transaction:
// a send is never marked sent without its record, nor the other way round.
func (db *DB) FinishSend(ctx context.Context, s Send, in Ingest, jobs ...JobSpec) error {
	return db.FinishSends(ctx, []SendFinish{{Send: s, Ingest: in, Jobs: jobs}})
}

// FinishSends is FinishSend for many sends in one transaction: all or
// none. It records a batch of deliveries (see CommitSteps).
//
// A send's message never changes once the send is created, so a send
// given without one (as SendStates reads them) keeps its stored message;
// one given with a message replaces it.
func (db *DB) FinishSends(ctx context.Context, fs []SendFinish) error {
	name := func(i int) string {
		if len(fs) == 1 {
			return "send " + fs[i].Send.ID
		}
		return fmt.Sprintf("%d sends: %s", len(fs), fs[i].Send.ID)
	}
	raws := make([][]byte, len(fs))
	preps := make([]preparedIngest, len(fs))
	for i := range fs {
		s := &fs[i].Send
		if err := validSend(*s); err != nil {
			return fmt.Errorf("storage: finish %s: %w", name(i), err)
		}
		if fs[i].Ingest.Delivery != nil {
			return fmt.Errorf("storage: finish %s: %w: no raw delivery belongs to a send", name(i), ErrInvalid)
		}
		var err error
		if preps[i], err = db.prepareIngest(fs[i].Ingest); err != nil {
			return fmt.Errorf("storage: finish %s: %w", name(i), err)
		}
		s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
		if raws[i], err = encodeSend(*s); err != nil {
			return fmt.Errorf("storage: finish %s: %w", name(i), err)
		}
	}
	db.planProfiles(preps)
	err := db.batch(ctx, func(tx *bolt.Tx) error {
		for i, f := range fs {
			if err := db.updateSendTx(tx, f.Send, raws[i], f.Jobs, true); err != nil {
				return fmt.Errorf("send %s: %w", f.Send.ID, err)
			}
			if len(preps[i].records) == 0 {
				continue
			}
			if _, err := db.appendTx(tx, preps[i]); err != nil {
				return fmt.Errorf("send %s: %w", f.Send.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		if len(fs) == 1 {
			return fmt.Errorf("storage: finish send %s: %w", fs[0].Send.ID, err)
		}
		return fmt.Errorf("storage: finish %d sends: %w", len(fs), err)
	}
	return nil
}

// JourneyStart is a journey an evaluation starts, with its first step's job.
type JourneyStart struct {
	// Journey is the new journey, waiting on its first step.
	Journey Journey
	// Jobs are enqueued with it (the first step's job).
	Jobs []JobSpec
}

// EvaluationCommit is what one evaluation of a record decides for one
// profile, written in one transaction instead of one per journey, one for
// the decisions and one for the job's end.
type EvaluationCommit struct {
	// ProfileID is the evaluated profile, which the decisions belong to.
	ProfileID string
	// Starts are the journeys the record starts.
	Starts []JourneyStart
	// Decisions explain each rule the record triggered (AppendDecisions).
	Decisions []Decision
	// CompleteJob, when not zero, is the running evaluation job, ended as
	// completed in the same transaction (see StepCommit.CompleteJob).
	CompleteJob uint64
}

// CommitEvaluation writes an EvaluationCommit atomically.
func (db *DB) CommitEvaluation(ctx context.Context, c EvaluationCommit) error {
	if c.ProfileID == "" && len(c.Decisions) > 0 {
		return fmt.Errorf("storage: commit evaluation: %w: decisions need a profile", ErrInvalid)
	}
	raws := make([][]byte, len(c.Starts))
	for i, s := range c.Starts {
		j := s.Journey
		if j.ID == "" || j.Rule == "" || j.ProfileID == "" {
			return fmt.Errorf("storage: commit evaluation: journey %q: %w: id, rule and profile are required", j.ID, ErrInvalid)
		}
		raw, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("storage: commit evaluation: journey %s: %w", j.ID, err)
		}
		raws[i] = raw
	}
	err := db.batch(ctx, func(tx *bolt.Tx) error {
		for i, s := range c.Starts {
			if err := db.putJourneyTx(tx, s.Journey, raws[i], s.Jobs); err != nil {
				return fmt.Errorf("journey %s: %w", s.Journey.ID, err)
			}
		}
		if len(c.Decisions) > 0 {
			if err := appendDecisionsTx(tx, c.ProfileID, c.Decisions); err != nil {
				return fmt.Errorf("decisions: %w", err)
			}
		}
		return db.completeJobTx(tx, c.CompleteJob)
	})
	if err != nil {
		return fmt.Errorf("storage: commit evaluation for %s: %w", c.ProfileID, err)
	}
	return nil
}

// completeJobTx ends a running job as completed inside the transaction
// that did its work (none when id is 0).
func (db *DB) completeJobTx(tx *bolt.Tx, id uint64) error {
	if id == 0 {
		return nil
	}
	if err := db.finishJobTx(tx, id, JobOutcome{State: JobCompleted}); err != nil {
		return fmt.Errorf("job %d: %w", id, err)
	}
	return nil
}
