package journey_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

// flakyObserver fails its first fails calls.
type flakyObserver struct {
	fails atomic.Int32
	calls atomic.Int32
}

func (o *flakyObserver) Observe(context.Context, behavior.Record, storage.Profile) error {
	o.calls.Add(1)
	if o.fails.Add(-1) >= 0 {
		return errors.New("observer down")
	}
	return nil
}

// TestEvaluationCommitsWithItsJob checks the folded evaluation: the
// journey a record starts, its decision and the end of the evaluation job
// are one write; when an observer fails the journey still starts but the
// job is retried, and the retry starts nothing twice and then ends the job.
func TestEvaluationCommitsWithItsJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, twoStep), config.Policies{})
	obs := &flakyObserver{}
	obs.fails.Store(1)
	sched := scheduler.New(h.Store, scheduler.Options{Clock: h.Clock, Backoff: func(int) time.Duration { return time.Minute }})
	eng := journey.New(h.Store, h.Sending, journey.Options{Clock: h.Clock, Observers: []dispatch.Observer{obs, h.Sending}})
	eng.SetRules(h.Engine.Rules())
	eng.Register(sched)

	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	pid := profileID(t, h, "ann@example.com")
	jobs := func() map[storage.JobState]int {
		m, err := h.Store.CountJobs(ctx)
		require.NoError(t, err)
		return m
	}

	// First run: the observer fails. The journey starts anyway, the job
	// is left to retry.
	n, err := sched.RunDue(ctx, t0)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	js, err := h.Store.JourneysByProfile(ctx, pid)
	require.NoError(t, err)
	require.Len(t, js, 1)
	require.Equal(t, 1, jobs()[storage.JobRetryable], "evaluation job after a failed observer: %v", jobs())
	ds, err := h.Store.Decisions(ctx, pid)
	require.NoError(t, err)
	require.Len(t, ds, 1)

	// The retry: one write for the replayed decision and the job's end.
	before := h.Store.CommitStats()
	n, err = sched.RunDue(ctx, t0.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the evaluation is due (the first step waits an hour)")
	after := h.Store.CommitStats()
	// The claim is one write, the evaluation (decision + job end) another.
	require.Equal(t, uint64(2), after.Writes-before.Writes)
	require.Equal(t, int32(2), obs.calls.Load())
	require.Equal(t, 0, jobs()[storage.JobRetryable])
	require.Equal(t, 1, jobs()[storage.JobCompleted], "%v", jobs())
	js, err = h.Store.JourneysByProfile(ctx, pid)
	require.NoError(t, err)
	require.Len(t, js, 1, "a replayed evaluation starts nothing twice")
	ds2, err := h.Store.Decisions(ctx, pid)
	require.NoError(t, err)
	require.Equal(t, ds, ds2)

	// A fresh record: claim, then journey + decision + job end in one
	// write; no separate FinishJob.
	require.NoError(t, h.Ingest(ctx, checkout("c2", "bob@example.com", t0.Add(2*time.Minute))))
	before = h.Store.CommitStats()
	n, err = sched.RunDue(ctx, t0.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	after = h.Store.CommitStats()
	require.Equal(t, uint64(2), after.Writes-before.Writes, "claim + one evaluation commit")
	js, err = h.Store.JourneysByProfile(ctx, profileID(t, h, "bob@example.com"))
	require.NoError(t, err)
	require.Len(t, js, 1)
	require.Equal(t, 2, jobs()[storage.JobCompleted], "%v", jobs())
}

// TestReplayFindsJourneyOfHashedID checks that a record which started a
// journey before journey ids were ordered by time (a hashed id, stored by
// an earlier version) does not start it again when evaluated once more:
// the replay is recognised by its trigger record, not only by its id.
func TestReplayFindsJourneyOfHashedID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, twoStep), config.Policies{})
	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	pid := profileID(t, h, "ann@example.com")
	old := storage.Journey{
		ID: behavior.DeriveID("journey", "two-step", pid, "c1"), Rule: "two-step", ProfileID: pid, TriggerRecord: "c1",
		Step: 1, Status: storage.JourneyWaiting, StartedAt: t0, DueAt: t0.Add(time.Hour), UpdatedAt: t0,
	}
	require.NotEqual(t, journey.JourneyID("two-step", pid, "c1", t0), old.ID)
	require.NoError(t, h.Store.PutJourney(ctx, old))

	require.NoError(t, h.Engine.Evaluate(ctx, "c1", pid))
	js, err := h.Store.JourneysByProfile(ctx, pid)
	require.NoError(t, err)
	require.Len(t, js, 1, "the record already started its journey")
	require.Equal(t, old.ID, js[0].ID)
	ds, err := h.Store.Decisions(ctx, pid)
	require.NoError(t, err)
	require.NotEmpty(t, ds)
	require.Equal(t, old.ID, ds[len(ds)-1].JourneyID, "the decision names the stored journey")
}
