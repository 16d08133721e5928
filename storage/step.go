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
	j := c.Journey
	if j.ID == "" || j.Rule == "" || j.ProfileID == "" {
		return Send{}, false, fmt.Errorf("storage: commit step of %q: %w: id, rule and profile are required", j.ID, ErrInvalid)
	}
	var send Send
	var sendRaw []byte
	if c.Send != nil {
		send = *c.Send
		if err := validSend(send); err != nil {
			return Send{}, false, fmt.Errorf("storage: commit step of %s: %w", j.ID, err)
		}
		var err error
		if sendRaw, err = db.encodeNewSend(&send); err != nil {
			return Send{}, false, fmt.Errorf("storage: commit step of %s: %w", j.ID, err)
		}
	}
	journeyRaw, err := json.Marshal(j)
	if err != nil {
		return Send{}, false, fmt.Errorf("storage: commit step of %s: %w", j.ID, err)
	}
	var out Send
	var created bool
	err = db.batch(ctx, func(tx *bolt.Tx) error {
		out, created = Send{}, false
		if c.Send != nil {
			var err error
			if out, created, err = db.createSendTx(tx, send, sendRaw, nil); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			if created {
				if _, err := db.enqueueJobsTx(tx, c.SendJobs); err != nil {
					return fmt.Errorf("send jobs: %w", err)
				}
			}
		}
		if err := db.putJourneyTx(tx, j, journeyRaw, c.Jobs); err != nil {
			return fmt.Errorf("journey: %w", err)
		}
		return db.completeJobTx(tx, c.CompleteJob)
	})
	if err != nil {
		return Send{}, false, fmt.Errorf("storage: commit step of %s: %w", j.ID, err)
	}
	return out, created, nil
}

// FinishSend replaces the send with s.ID, appends in (the email_sent
// record of a send that went out) and enqueues jobs, in one transaction:
// a send is never marked sent without its record, nor the other way round.
func (db *DB) FinishSend(ctx context.Context, s Send, in Ingest, jobs ...JobSpec) error {
	if err := validSend(s); err != nil {
		return fmt.Errorf("storage: finish send: %w", err)
	}
	if in.Delivery != nil {
		return fmt.Errorf("storage: finish send %s: %w: no raw delivery belongs to a send", s.ID, ErrInvalid)
	}
	p, err := db.prepareIngest(in)
	if err != nil {
		return fmt.Errorf("storage: finish send %s: %w", s.ID, err)
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("storage: finish send %s: %w", s.ID, err)
	}
	err = db.batch(ctx, func(tx *bolt.Tx) error {
		if err := db.updateSendTx(tx, s, raw, jobs); err != nil {
			return err
		}
		if len(p.records) == 0 {
			return nil
		}
		_, err := db.appendTx(tx, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: finish send %s: %w", s.ID, err)
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
