package journey_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/rules/ruletest"
	"github.com/nudge-email/nudge/storage"
)

// runLoop runs the harness's real scheduler loop (which hands due steps
// over in batches, unlike RunUntil) until done reports true and no job
// runs, then stops it.
func runLoop(t *testing.T, h *ruletest.Harness, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- h.Scheduler.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		counts, err := h.Store.CountJobs(context.Background())
		require.NoError(t, err)
		if done() && counts[storage.JobRunning] == 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("loop did not finish: jobs %v", counts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-stopped)
}

// TestStepBatchKeepsProfilesApart: due steps of many profiles commit as
// one batch, but two steps of one profile due together still run one
// after the other, so the second sees the first's send: with a cap of
// one email a day, each profile gets exactly one, and its other journey
// waits for the cap.
func TestStepBatchKeepsProfilesApart(t *testing.T) {
	t.Parallel()
	const oneStep = `
id: %s
trigger: { event: checkout_started }
steps:
  - { wait: 1h, send: { template: d-%s } }
`
	set := ruleSet(t, fmt.Sprintf(oneStep, "cart-a", "a"), fmt.Sprintf(oneStep, "cart-b", "b"))
	clk := clock.NewFake(t0)
	rec := ruletest.NewRecorder(clk)
	h, err := ruletest.NewHarness(ruletest.HarnessOptions{
		Dir: t.TempDir(), Clock: clk, Recorder: rec, Rules: set,
		Policies: config.Policies{RequireConsent: true, FrequencyCap: config.FrequencyCap{Max: 1, Per: config.Duration(24 * time.Hour)}},
	})
	require.NoError(t, err)
	defer h.Close()
	ctx := context.Background()

	const profiles = 12
	var recs []behavior.Record
	for i := range profiles {
		recs = append(recs, checkout(fmt.Sprint("c", i), fmt.Sprintf("b%d@example.com", i), t0))
	}
	require.NoError(t, h.Ingest(ctx, recs...))
	_, err = h.RunUntil(ctx, t0) // two journeys per profile, steps due at 1h
	require.NoError(t, err)

	clk.Set(t0.Add(90 * time.Minute))
	runLoop(t, h, func() bool { return len(rec.Messages()) >= profiles })

	perEmail := map[string]int{}
	for _, m := range rec.Messages() {
		perEmail[m.Message.To.Email]++
	}
	require.Len(t, perEmail, profiles, "every profile got an email")
	for email, n := range perEmail {
		require.Equal(t, 1, n, "%s got %d emails under a cap of one a day", email, n)
	}
	for i := range profiles {
		js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, fmt.Sprintf("b%d@example.com", i)))
		require.NoError(t, err)
		require.Len(t, js, 2)
		var completed, deferred int
		for _, j := range js {
			switch {
			case j.Status == storage.JourneyCompleted:
				completed++
			case j.Active() && j.DueAt.After(clk.Now()):
				deferred++
			}
		}
		require.Equal(t, 1, completed, "profile %d: %v / %v", i, actions(js[0]), actions(js[1]))
		require.Equal(t, 1, deferred, "profile %d: %v / %v", i, actions(js[0]), actions(js[1]))
	}
	sends, err := h.Store.ListSends(ctx, storage.SendSent, 0)
	require.NoError(t, err)
	require.Len(t, sends, profiles, "every send recorded as sent")
}
