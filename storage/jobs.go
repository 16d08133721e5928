package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

const defaultMaxAttempts = 25

// EnqueueJobs adds jobs in one transaction, skipping existing unique keys.
func (db *DB) EnqueueJobs(ctx context.Context, specs ...JobSpec) (int, error) {
	if len(specs) == 0 {
		return 0, nil
	}
	var n int
	err := db.batch(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = db.enqueueJobsTx(tx, specs)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: enqueue jobs: %w", err)
	}
	return n, nil
}

// enqueueJobsTx is EnqueueJobs inside a caller's transaction, so records,
// journeys and sends commit together with the jobs they cause.
func (db *DB) enqueueJobsTx(tx *bolt.Tx, specs []JobSpec) (int, error) {
	jobs := appendBucket(tx, bucketJobs)
	due := appendBucket(tx, bucketJobsDue)
	uniq := tx.Bucket(bucketJobUnique)
	now := db.now()
	added := 0
	for _, s := range specs {
		if s.Kind == "" {
			return added, fmt.Errorf("%w: job without kind", ErrInvalid)
		}
		if s.UniqueKey != "" && uniq.Get([]byte(s.UniqueKey)) != nil {
			continue
		}
		id, err := jobs.NextSequence()
		if err != nil {
			return added, err
		}
		j := Job{
			ID: id, Kind: s.Kind, UniqueKey: s.UniqueKey, State: JobScheduled,
			Payload: s.Payload, DueAt: s.DueAt.UTC(), MaxAttempts: s.MaxAttempts,
			CreatedAt: now, UpdatedAt: now,
		}
		if j.DueAt.IsZero() {
			j.DueAt = now
		}
		if j.MaxAttempts <= 0 {
			j.MaxAttempts = defaultMaxAttempts
		}
		if err := putJSON(jobs, u64(id), j); err != nil {
			return added, err
		}
		if err := due.Put(dueKey(j.DueAt, id), nil); err != nil {
			return added, err
		}
		if s.UniqueKey != "" {
			if err := uniq.Put([]byte(s.UniqueKey), u64(id)); err != nil {
				return added, err
			}
		}
		added++
	}
	return added, nil
}

func dueKey(t time.Time, id uint64) []byte {
	return append(timeKey(t), u64(id)...)
}

// ClaimDueJobs moves due jobs to running.
func (db *DB) ClaimDueJobs(ctx context.Context, now time.Time, limit int) ([]Job, error) {
	return db.claimDueJobs(ctx, now, limit, false)
}

// ClaimDueJobsAhead moves due jobs to running in the next commit another
// write makes, or alone after a few milliseconds: a claim made while the
// scheduler's workers are all busy has no use for its jobs yet, and
// sharing a commit spares the writer a transaction, its two fdatasyncs
// and its meta and branch pages (bench/sched: 2.7 → 2.0 commits per batch
// of steps).
func (db *DB) ClaimDueJobsAhead(ctx context.Context, now time.Time, limit int) ([]Job, error) {
	return db.claimDueJobs(ctx, now, limit, true)
}

func (db *DB) claimDueJobs(ctx context.Context, now time.Time, limit int, ahead bool) ([]Job, error) {
	if limit <= 0 {
		limit = 1
	}
	// A claim that finds nothing due costs no write: an empty bbolt commit
	// still writes the freelist and meta and fdatasyncs twice, and the
	// scheduler claims after every wake-up, such as each journey start
	// announcing a step due hours later.
	due := false
	err := db.view(ctx, func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketJobsDue).Cursor().First()
		due = k != nil && bytes.Compare(k[:8], timeKey(now)) <= 0
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: claim jobs: %w", err)
	}
	if !due {
		return nil, nil
	}
	var out []Job
	// Group-committed with the handlers' own writes: a claim of its own
	// would take the writer and an fsync for itself between their
	// commits. The function may run again (a failed batch); it starts
	// from nothing each time.
	claim := func(tx *bolt.Tx) error {
		out = out[:0]
		jobs := tx.Bucket(bucketJobs)
		due := tx.Bucket(bucketJobsDue)
		limitKey := timeKey(now)
		var claimed [][]byte
		c := due.Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if bytes.Compare(k[:8], limitKey) > 0 {
				break
			}
			id := binary.BigEndian.Uint64(k[8:16])
			claimed = append(claimed, append([]byte(nil), k...))
			var j Job
			ok, err := getJSON(jobs, u64(id), &j)
			if err != nil {
				return err
			}
			if !ok || (j.State != JobScheduled && j.State != JobRetryable) {
				continue // stale index entry
			}
			j.State = JobRunning
			j.Attempts++
			j.UpdatedAt = db.now()
			if err := putJSON(jobs, u64(id), j); err != nil {
				return err
			}
			out = append(out, j)
		}
		for _, k := range claimed {
			if err := due.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}
	if ahead {
		err = db.patientBatch(ctx, claim)
	} else {
		err = db.batch(ctx, claim)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: claim jobs: %w", err)
	}
	return out, nil
}

// FinishJob records a running job's outcome. Completed and cancelled jobs
// are deleted (their unique keys stay); discarded jobs are kept for
// inspection; retryable and scheduled (snoozed) jobs return to the due
// index. A snooze does not count as an attempt.
func (db *DB) FinishJob(ctx context.Context, id uint64, out JobOutcome) error {
	err := db.batch(ctx, func(tx *bolt.Tx) error { return db.finishJobTx(tx, id, out) })
	if err != nil {
		return fmt.Errorf("storage: finish job %d: %w", id, err)
	}
	return nil
}

// finishJobTx is FinishJob inside a caller's transaction, so a handler's
// writes and the end of its job commit together.
func (db *DB) finishJobTx(tx *bolt.Tx, id uint64, out JobOutcome) error {
	jobs := tx.Bucket(bucketJobs)
	var j Job
	ok, err := getJSON(jobs, u64(id), &j)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotFound
	}
	if j.State != JobRunning {
		return fmt.Errorf("%w: job %d is %s, not running", ErrConflict, id, j.State)
	}
	j.UpdatedAt = db.now()
	switch out.State {
	case JobCompleted, JobCancelled:
		if err := bumpCounter(tx, "jobs_"+string(out.State)); err != nil {
			return err
		}
		return jobs.Delete(u64(id))
	case JobDiscarded:
		j.State = JobDiscarded
		j.LastError = out.Error
		return putJSON(jobs, u64(id), j)
	case JobRetryable, JobScheduled:
		if out.State == JobScheduled && j.Attempts > 0 {
			j.Attempts--
		} else {
			j.LastError = out.Error
		}
		j.State = out.State
		j.DueAt = out.DueAt.UTC()
		if j.DueAt.IsZero() {
			j.DueAt = db.now()
		}
		if err := putJSON(jobs, u64(id), j); err != nil {
			return err
		}
		return tx.Bucket(bucketJobsDue).Put(dueKey(j.DueAt, id), nil)
	default:
		return fmt.Errorf("%w: job outcome state %q", ErrInvalid, out.State)
	}
}

// NextJobDue returns the earliest due time.
func (db *DB) NextJobDue(ctx context.Context) (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := db.view(ctx, func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketJobsDue).Cursor().First()
		if k != nil {
			t, ok = keyTime(k[:8]), true
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("storage: next job due: %w", err)
	}
	return t, ok, nil
}

// RecoverJobs returns jobs left running to retryable, due now.
func (db *DB) RecoverJobs(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := db.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		jobs := tx.Bucket(bucketJobs)
		due := tx.Bucket(bucketJobsDue)
		var running []Job
		err := jobs.ForEach(func(k, v []byte) error {
			var j Job
			if _, err := getJSON(jobs, k, &j); err != nil {
				return err
			}
			if j.State == JobRunning {
				running = append(running, j)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, j := range running {
			j.State = JobRetryable
			j.DueAt = now.UTC()
			j.UpdatedAt = now.UTC()
			j.LastError = "interrupted: process stopped while the job ran"
			if err := putJSON(jobs, u64(j.ID), j); err != nil {
				return err
			}
			if err := due.Put(dueKey(j.DueAt, j.ID), nil); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: recover jobs: %w", err)
	}
	return n, nil
}

// Job returns one job still held (completed and cancelled jobs are gone).
func (db *DB) Job(ctx context.Context, id uint64) (Job, error) {
	var j Job
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketJobs), u64(id), &j)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Job{}, fmt.Errorf("storage: job %d: %w", id, err)
	}
	return j, nil
}

// CancelJobs cancels pending jobs whose unique key starts with prefix.
func (db *DB) CancelJobs(ctx context.Context, prefix string) (int, error) {
	n := 0
	err := db.batch(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = db.cancelJobsTx(tx, prefix)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: cancel jobs %q: %w", prefix, err)
	}
	return n, nil
}

func (db *DB) cancelJobsTx(tx *bolt.Tx, prefix string) (int, error) {
	if prefix == "" {
		return 0, fmt.Errorf("%w: empty cancel prefix", ErrInvalid)
	}
	jobs := tx.Bucket(bucketJobs)
	due := tx.Bucket(bucketJobsDue)
	n := 0
	c := tx.Bucket(bucketJobUnique).Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		id := binary.BigEndian.Uint64(v)
		var j Job
		ok, err := getJSON(jobs, u64(id), &j)
		if err != nil {
			return n, err
		}
		if !ok || (j.State != JobScheduled && j.State != JobRetryable) {
			continue
		}
		if err := due.Delete(dueKey(j.DueAt, id)); err != nil {
			return n, err
		}
		if err := jobs.Delete(u64(id)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// CountJobs counts held jobs by state, plus the running totals of
// completed and cancelled jobs.
func (db *DB) CountJobs(ctx context.Context) (map[JobState]int, error) {
	out := map[JobState]int{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		err := jobs.ForEach(func(k, v []byte) error {
			var j Job
			if _, err := getJSON(jobs, k, &j); err != nil {
				return err
			}
			out[j.State]++
			return nil
		})
		if err != nil {
			return err
		}
		out[JobCompleted] = int(counter(tx, "jobs_"+string(JobCompleted)))
		out[JobCancelled] = int(counter(tx, "jobs_"+string(JobCancelled)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: count jobs: %w", err)
	}
	return out, nil
}

// bumpCounter increments a counter in the meta bucket.
func bumpCounter(tx *bolt.Tx, name string) error {
	m := tx.Bucket(bucketMeta)
	key := []byte("counter:" + name)
	var v uint64
	if b := m.Get(key); len(b) == 8 {
		v = binary.BigEndian.Uint64(b)
	}
	return m.Put(key, u64(v+1))
}

func counter(tx *bolt.Tx, name string) uint64 {
	if b := tx.Bucket(bucketMeta).Get([]byte("counter:" + name)); len(b) == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}
