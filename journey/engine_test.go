package journey_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/rules/ruletest"
	"github.com/nudge-email/nudge/sending"
	"github.com/nudge-email/nudge/storage"
)

var t0 = ruletest.DefaultStart

// ruleSet parses rules given as YAML documents.
func ruleSet(t testing.TB, docs ...string) *rules.Set {
	t.Helper()
	var all []*rules.Rule
	for i, d := range docs {
		rs, err := rules.Parse([]byte(d), fmt.Sprintf("rule%d.yaml", i))
		require.NoError(t, err)
		all = append(all, rs...)
	}
	set, err := rules.NewSet(all...)
	require.NoError(t, err)
	return set
}

const twoStep = `
id: two-step
trigger: { event: checkout_started }
exit: [{ event: order_placed }]
steps:
  - { wait: 1h, send: { template: d-1 } }
  - { wait: 1h, send: { template: d-2 } }
`

func newHarness(t testing.TB, set *rules.Set, pol config.Policies) *ruletest.Harness {
	t.Helper()
	h, err := ruletest.NewHarness(ruletest.HarnessOptions{Dir: t.TempDir(), Rules: set, Policies: pol})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func checkout(id, email string, at time.Time) behavior.Record {
	return behavior.Record{
		ID: id, Kind: behavior.CheckoutStarted, Source: "test", Store: "main", At: at, Email: email,
		Value: 5400, Currency: "USD", Consent: &behavior.Consent{State: behavior.ConsentGranted},
		Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400, Quantity: 1}},
	}
}

func profileID(t testing.TB, h *ruletest.Harness, email string) string {
	t.Helper()
	p, err := h.Store.ProfileByEmail(context.Background(), email)
	require.NoError(t, err)
	return p.ID
}

func actions(j storage.Journey) []string {
	var out []string
	for _, e := range j.Trace {
		out = append(out, fmt.Sprintf("%d:%s", e.Step, e.Action))
	}
	return out
}

func TestJourneyLifecycleAndExplain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, twoStep), config.Policies{RequireConsent: true})
	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	_, err := h.RunUntil(ctx, t0.Add(30*time.Minute))
	require.NoError(t, err)
	// A second checkout while the journey runs starts nothing.
	h.Clock.Set(t0.Add(30 * time.Minute))
	require.NoError(t, h.Ingest(ctx, checkout("c2", "ann@example.com", t0.Add(30*time.Minute))))
	_, err = h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)

	pid := profileID(t, h, "ann@example.com")
	js, err := h.Store.JourneysByProfile(ctx, pid)
	require.NoError(t, err)
	require.Len(t, js, 1)
	j := js[0]
	require.Equal(t, journey.JourneyID("two-step", pid, "c1", t0), j.ID)
	require.Equal(t, storage.JourneyCompleted, j.Status)
	require.Equal(t, []string{"0:started", "1:scheduled", "1:queued", "2:scheduled", "2:queued", "2:completed"}, actions(j))
	require.Equal(t, t0.Add(2*time.Hour), j.Trace[4].At, "step 2 runs 1h after step 1 ran")

	sends, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Equal(t, []ruletest.Sent{
		{At: t0.Add(time.Hour), Rule: "two-step", Step: 1, Email: "ann@example.com"},
		{At: t0.Add(2 * time.Hour), Rule: "two-step", Step: 2, Email: "ann@example.com"},
	}, sends)

	x, err := journey.ExplainEmail(ctx, h.Store, "ANN@example.com", "")
	require.NoError(t, err)
	require.Len(t, x.Decisions, 2)
	require.True(t, x.Decisions[0].Started)
	require.Equal(t, j.ID, x.Decisions[0].JourneyID)
	require.False(t, x.Decisions[1].Started)
	require.Contains(t, x.Decisions[1].Reason, "already in journey "+j.ID)
	var text bytes.Buffer
	require.NoError(t, x.WriteText(&text))
	for _, want := range []string{
		"ann@example.com (profile " + pid + ")",
		"two-step             record c1  started journey " + j.ID,
		"record c2  not started: already in journey " + j.ID,
		j.ID + "  two-step  started 2026-01-05T09:00:00Z: completed",
		"2026-01-05T10:00:00Z  step 1   queued: send " + sending.SendID(j.ID, 1),
	} {
		require.Contains(t, text.String(), want)
	}
	raw, err := json.Marshal(x)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"journeys":[{"id":"`+j.ID+`"`)

	only, err := journey.Explain(ctx, h.Store, pid, "other-rule")
	require.NoError(t, err)
	require.Empty(t, only.Decisions)
	require.Empty(t, only.Journeys)
	_, err = journey.ExplainEmail(ctx, h.Store, "nobody@example.com", "")
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func TestExitsSuppressionAndStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, twoStep), config.Policies{RequireConsent: true})
	noConsent := checkout("c3", "cy@example.com", t0)
	noConsent.Consent = nil
	require.NoError(t, h.Ingest(ctx,
		checkout("c1", "ann@example.com", t0),
		checkout("c2", "bo@example.com", t0),
		noConsent,
	))
	_, err := h.RunUntil(ctx, t0.Add(90*time.Minute))
	require.NoError(t, err)
	h.Clock.Set(t0.Add(90 * time.Minute))
	require.NoError(t, h.Ingest(ctx,
		behavior.Record{ID: "o1", Kind: behavior.OrderPlaced, Source: "test", At: h.Clock.Now(), Email: "ann@example.com", Value: 5400},
		behavior.Record{ID: "u1", Kind: behavior.Unsubscribed, Source: "test", At: h.Clock.Now(), Email: "bo@example.com"},
	))
	_, err = h.RunUntil(ctx, t0.Add(10*time.Hour))
	require.NoError(t, err)

	tests := []struct {
		email, status, reason string
	}{
		{"ann@example.com", storage.JourneyExited, "exit: order_placed"},
		{"bo@example.com", storage.JourneySuppressed, "suppressed: unsubscribed"},
		{"cy@example.com", storage.JourneySuppressed, "consent"}, // the gate's wording
	}
	for _, tc := range tests {
		js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, tc.email))
		require.NoError(t, err)
		require.Len(t, js, 1, tc.email)
		require.Equal(t, tc.status, js[0].Status, tc.email)
		require.Contains(t, js[0].Reason, tc.reason, tc.email)
		require.False(t, js[0].Active())
	}
	sends, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Len(t, sends, 2, "step 1 for ann and bo only")
	counts, err := journey.Counts(ctx, h.Store, h.Engine.Rules())
	require.NoError(t, err)
	require.Equal(t, []journey.RuleCounts{{Rule: "two-step", Started: 3, Exited: 1, Suppressed: 2}}, counts)
}

func TestTriggerDecisions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set := ruleSet(t, `
id: big
trigger: { event: checkout_started, where: 'event.value >= 10000' }
steps: [{ wait: 1h, send: { template: t } }]
limits: { reenter_after: 2d }
`, `
id: fragile
trigger: { event: checkout_started, where: 'event.items[5].price > 0' }
steps: [{ wait: 1h, send: { template: t } }]
`)
	h := newHarness(t, set, config.Policies{RequireConsent: true})
	big := checkout("c1", "ann@example.com", t0)
	big.Value = 20000
	old := checkout("c0", "ann@example.com", t0.Add(-48*time.Hour))
	old.Value = 20000
	require.NoError(t, h.Ingest(ctx, big, old))
	_, err := h.RunUntil(ctx, t0.Add(3*time.Hour))
	require.NoError(t, err)
	h.Clock.Set(t0.Add(24 * time.Hour))
	again := checkout("c2", "ann@example.com", h.Clock.Now())
	again.Value = 20000
	small := checkout("c3", "bo@example.com", h.Clock.Now())
	require.NoError(t, h.Ingest(ctx, again, small))
	_, err = h.RunUntil(ctx, t0.Add(30*time.Hour))
	require.NoError(t, err)

	ds, err := h.Store.Decisions(ctx, profileID(t, h, "ann@example.com"))
	require.NoError(t, err)
	got := map[string]string{}
	for _, d := range ds {
		reason := d.Reason
		if d.Started {
			reason = "started"
		}
		got[d.Rule+"/"+d.RecordID] = reason
	}
	require.Equal(t, "started", got["big/c1"])
	require.Equal(t, "record is 48h0m0s old, older than the 24h0m0s a trigger may be", got["big/c0"])
	require.Contains(t, got["big/c2"], "limits.reenter_after 2d: journey ")
	require.Contains(t, got["fragile/c1"], "trigger.where failed: rule1.yaml:")
	require.Contains(t, got["fragile/c1"], "index out of range")

	ds, err = h.Store.Decisions(ctx, profileID(t, h, "bo@example.com"))
	require.NoError(t, err)
	require.Equal(t, "trigger.where is false: event.value >= 10000", ds[0].Reason)
}

func TestHoldoutIsDeterministicAndNeverSends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, `
id: held
trigger: { event: checkout_started }
steps: [{ wait: 1h, send: { template: t } }, { wait: 1h, send: { template: t } }]
holdout: 0.5
`), config.Policies{RequireConsent: true})
	var recs []behavior.Record
	for i := range 30 {
		recs = append(recs, checkout(fmt.Sprint("c", i), fmt.Sprintf("p%d@example.com", i), t0))
	}
	require.NoError(t, h.Ingest(ctx, recs...))
	_, err := h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)

	sent := map[string]int{}
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	for _, s := range ss {
		sent[s.Email]++
	}
	held := 0
	for i := range 30 {
		email := fmt.Sprintf("p%d@example.com", i)
		pid := profileID(t, h, email)
		js, err := h.Store.JourneysByProfile(ctx, pid)
		require.NoError(t, err)
		require.Len(t, js, 1)
		want := journey.InHoldout("held", pid, 0.5)
		require.Equal(t, want, js[0].Holdout, email)
		if want {
			held++
			require.Equal(t, storage.JourneyHeldOut, js[0].Status)
			require.Zero(t, sent[email], "a held-out profile is never mailed")
			s, err := h.Store.Send(ctx, sending.SendID(js[0].ID, 1))
			require.NoError(t, err)
			require.Equal(t, storage.SendHeld, s.Status, "held sends are recorded")
		} else {
			require.Equal(t, storage.JourneyCompleted, js[0].Status)
			require.Equal(t, 2, sent[email])
		}
	}
	require.Positive(t, held)
	require.Less(t, held, 30)
}

func TestInHoldoutShare(t *testing.T) {
	t.Parallel()
	n, in := 20000, 0
	for i := range n {
		if journey.InHoldout("cart-abandonment", fmt.Sprint("profile-", i), 0.1) {
			in++
		}
	}
	require.InDelta(t, 0.1, float64(in)/float64(n), 0.01)
	require.False(t, journey.InHoldout("r", "p", 0))
	require.Equal(t, journey.InHoldout("r", "p", 0.3), journey.InHoldout("r", "p", 0.3))
}

func TestBestHourInProfileZone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, `
id: best
trigger: { event: became_inactive }
steps:
  - { wait: 0s, wait_until_best_hour: true, send: { template: t } }
  - { wait: 1h, wait_until_best_hour: true, send: { template: t } }
`), config.Policies{RequireConsent: true})
	// 09:00 UTC is 10:00 in Paris; the best hour 19 is 18:00 UTC today,
	// then step 2 (an hour after 18:00 UTC = 20:00 Paris) waits for 19:00
	// Paris tomorrow.
	require.NoError(t, h.Ingest(ctx, behavior.Record{
		ID: "u", Kind: behavior.CustomerUpdated, Source: "test", At: t0.Add(-time.Hour), Email: "ann@example.com",
		Consent: &behavior.Consent{State: behavior.ConsentGranted}, Person: &behavior.Person{Timezone: "Europe/Paris"},
	}))
	_, err := h.RunUntil(ctx, t0)
	require.NoError(t, err)
	pid := profileID(t, h, "ann@example.com")
	require.NoError(t, h.Store.SetScores(ctx, pid, map[string]float64{"best_hour": 19}, "", t0))
	require.NoError(t, h.Ingest(ctx, behavior.Record{ID: "i", Kind: behavior.BecameInactive, Source: "insights", At: t0, Email: "ann@example.com"}))
	_, err = h.RunUntil(ctx, t0.Add(3*24*time.Hour))
	require.NoError(t, err)
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Len(t, ss, 2)
	require.Equal(t, time.Date(2026, 1, 5, 18, 0, 0, 0, time.UTC), ss[0].At)
	require.Equal(t, time.Date(2026, 1, 6, 18, 0, 0, 0, time.UTC), ss[1].At)
}

func TestReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other := strings.ReplaceAll(twoStep, "id: two-step", "id: other")
	h := newHarness(t, ruleSet(t, twoStep, other), config.Policies{RequireConsent: true})
	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	_, err := h.RunUntil(ctx, t0)
	require.NoError(t, err)

	// A broken file keeps the old set and reports every error.
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(good, []byte(twoStep), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("id: bad\ntrigger: { event: nope }\nsteps: []\n"), 0o600))
	_, err = h.Engine.ReloadFiles(ctx, []string{good, bad})
	var list rules.Errors
	require.True(t, errors.As(err, &list), "%v", err)
	require.Len(t, list, 2)
	require.Equal(t, 2, h.Engine.Rules().Len(), "old set kept")

	res, err := h.Engine.ReloadFiles(ctx, []string{good})
	require.NoError(t, err)
	require.Equal(t, journey.ReloadResult{Rules: 1, Removed: []string{"other"}, Ended: 1}, res)
	pid := profileID(t, h, "ann@example.com")
	js, err := h.Store.JourneysByProfile(ctx, pid)
	require.NoError(t, err)
	for _, j := range js {
		if j.Rule == "other" {
			require.Equal(t, storage.JourneyExited, j.Status)
			require.Equal(t, journey.ReasonRuleRemoved, j.Reason)
		} else {
			require.True(t, j.Active())
		}
	}
	// SetRules alone ends a removed rule's journey lazily, when its step runs.
	h.Engine.SetRules(nil)
	_, err = h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)
	js, err = h.Store.JourneysByProfile(ctx, pid)
	require.NoError(t, err)
	for _, j := range js {
		require.Equal(t, storage.JourneyExited, j.Status)
		require.Equal(t, journey.ReasonRuleRemoved, j.Reason)
	}
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Empty(t, ss)
}

// crashingSender records through the harness's recorder and, at the
// n-th message, pulls the plug: it cancels the scheduler's context and
// closes the store without draining, as a killed process would leave it.
type crashingSender struct {
	rec   *ruletest.Recorder
	n     int64
	count atomic.Int64
	crash func()
	once  sync.Once
}

func (c *crashingSender) Name() string { return "log" }

func (c *crashingSender) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	res, err := c.rec.Send(ctx, m)
	if c.count.Add(1) == c.n {
		c.once.Do(c.crash)
	}
	return res, err
}

func TestCrashMidRunEveryDueStepFiresOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	set := ruleSet(t, twoStep)
	clk := clock.NewFake(t0)
	rec := ruletest.NewRecorder(clk)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var h1 *ruletest.Harness
	crasher := &crashingSender{rec: rec, n: 20}
	crasher.crash = func() {
		cancel()
		_ = h1.Store.Close() // no drain: running jobs stay "running"
	}
	h1, err := ruletest.NewHarness(ruletest.HarnessOptions{Dir: dir, Clock: clk, Recorder: rec, Sender: crasher, Rules: set, Policies: config.Policies{RequireConsent: true}})
	require.NoError(t, err)

	const profiles = 40
	var recs []behavior.Record
	for i := range profiles {
		recs = append(recs, checkout(fmt.Sprint("c", i), fmt.Sprintf("p%d@example.com", i), t0))
	}
	require.NoError(t, h1.Ingest(ctx, recs...))
	_, err = h1.RunUntil(ctx, t0) // evaluations: 40 journeys, step 1 due at 1h
	require.NoError(t, err)

	// Everything is due; the real scheduler loop runs it with 4 workers
	// until the sender pulls the plug at the 20th message.
	clk.Set(t0.Add(90 * time.Minute))
	done := make(chan error, 1)
	go func() { done <- h1.Scheduler.Run(runCtx) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("scheduler did not stop after the crash")
	}
	require.GreaterOrEqual(t, crasher.count.Load(), int64(20))
	require.Less(t, crasher.count.Load(), int64(2*profiles), "the crash happened mid-run")

	// Restart on the same file, same recorder.
	h2, err := ruletest.NewHarness(ruletest.HarnessOptions{Dir: dir, Clock: clk, Recorder: rec, Rules: set, Policies: config.Policies{RequireConsent: true}})
	require.NoError(t, err)
	defer h2.Close()
	_, err = h2.Recover(ctx)
	require.NoError(t, err)
	_, err = h2.RunUntil(ctx, t0.Add(6*time.Hour))
	require.NoError(t, err)

	// Every journey ran both steps; every step has exactly one outbox
	// entry; no message reached the provider twice. A message whose
	// provider call was in flight at the crash is "unknown" and never
	// repeated (CONTRACT §6), so it reached the recorder at most once.
	perSend := map[string]int{}
	for _, m := range rec.Messages() {
		perSend[m.Message.SendID]++
	}
	unknown := 0
	for i := range profiles {
		pid := profileID(t, h2, fmt.Sprintf("p%d@example.com", i))
		js, err := h2.Store.JourneysByProfile(ctx, pid)
		require.NoError(t, err)
		require.Len(t, js, 1)
		require.Equal(t, storage.JourneyCompleted, js[0].Status, "journey %d: %v", i, actions(js[0]))
		for step := 1; step <= 2; step++ {
			id := sending.SendID(js[0].ID, step)
			s, err := h2.Store.Send(ctx, id)
			require.NoError(t, err)
			switch s.Status {
			case storage.SendSent:
				require.Equal(t, 1, perSend[id], "send %s of step %d", id, step)
			case storage.SendUnknown:
				unknown++
				require.LessOrEqual(t, perSend[id], 1)
			default:
				t.Fatalf("send %s: status %s", id, s.Status)
			}
			delete(perSend, id)
		}
	}
	require.Empty(t, perSend, "messages for no journey step")
	// Steps run in batches (one claim, up to 64 jobs, per worker) whose
	// provider calls all start together, so what a crash can catch in
	// flight is at most a batch per worker.
	require.LessOrEqual(t, unknown, 4*64, "at most one in-flight batch per worker")
	t.Logf("crash after %d messages; %d sends in flight became unknown", crasher.count.Load(), unknown)
}

func TestEvaluateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, twoStep), config.Policies{RequireConsent: true})
	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	_, err := h.RunUntil(ctx, t0)
	require.NoError(t, err)
	pid := profileID(t, h, "ann@example.com")
	before, err := h.Store.Decisions(ctx, pid)
	require.NoError(t, err)
	// A crash after the evaluation but before its job was marked done
	// replays it.
	for range 3 {
		require.NoError(t, h.Engine.Evaluate(ctx, "c1", pid))
	}
	after, err := h.Store.Decisions(ctx, pid)
	require.NoError(t, err)
	require.Equal(t, before, after)
	js, err := h.Store.JourneysByProfile(ctx, pid)
	require.NoError(t, err)
	require.Len(t, js, 1)
	_, err = h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Len(t, ss, 2)
	// Unknown records and profiles are not errors: they were forgotten.
	require.NoError(t, h.Engine.Evaluate(ctx, "nope", pid))
	require.NoError(t, h.Engine.Evaluate(ctx, "c1", "nope"))
	require.NoError(t, h.Engine.RunStep(ctx, "nope", 1))
}

func TestExitWhereSeesTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Only a cart change that drops the triggering product ends it.
	h := newHarness(t, ruleSet(t, `
id: product-watch
trigger: { event: cart_updated }
exit:
  - event: cart_updated
    where: 'all(trigger.items, {.product_id not in map(event.items, {.product_id})})'
steps: [{ wait: 2h, send: { template: t } }]
limits: { reenter_after: 1d }
`), config.Policies{RequireConsent: true})
	cart := func(id string, at time.Duration, email string, products ...string) behavior.Record {
		r := behavior.Record{ID: id, Kind: behavior.CartUpdated, Source: "test", At: t0.Add(at), Email: email, Consent: &behavior.Consent{State: behavior.ConsentGranted}}
		for _, p := range products {
			r.Items = append(r.Items, behavior.Item{ProductID: p, Quantity: 1})
		}
		return r
	}
	require.NoError(t, h.Ingest(ctx, cart("a1", 0, "ann@example.com", "p1"), cart("b1", 0, "bo@example.com", "p1")))
	_, err := h.RunUntil(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	require.NoError(t, h.Ingest(ctx, cart("a2", time.Hour, "ann@example.com", "p1", "p2"), cart("b2", time.Hour, "bo@example.com", "p3")))
	_, err = h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Len(t, ss, 1)
	require.Equal(t, "ann@example.com", ss[0].Email)
	js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, "bo@example.com"))
	require.NoError(t, err)
	require.Equal(t, "exit: cart_updated", js[0].Reason)
}

func TestEditedRuleWithFewerSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, twoStep), config.Policies{RequireConsent: true})
	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	_, err := h.RunUntil(ctx, t0.Add(90*time.Minute))
	require.NoError(t, err)
	res, err := h.Engine.Reload(ctx, ruleSet(t, strings.Replace(twoStep, "  - { wait: 1h, send: { template: d-2 } }\n", "", 1)))
	require.NoError(t, err)
	require.Equal(t, journey.ReloadResult{Rules: 1}, res)
	_, err = h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)
	js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, "ann@example.com"))
	require.NoError(t, err)
	require.Equal(t, storage.JourneyCompleted, js[0].Status)
	require.Equal(t, "the rule no longer has a step 2", js[0].Reason)
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Len(t, ss, 1)
}

func TestDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, err := ruletest.NewHarness(ruletest.HarnessOptions{Dir: t.TempDir(), Rules: ruleSet(t, twoStep), Policies: config.Policies{RequireConsent: true}, DryRun: true})
	require.NoError(t, err)
	defer h.Close()
	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	_, err = h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)
	js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, "ann@example.com"))
	require.NoError(t, err)
	require.Equal(t, storage.JourneyCompleted, js[0].Status, "the gate passed for both steps")
	require.Empty(t, h.Recorder.Messages())
	sends, err := h.Store.ListSends(ctx, "", 0)
	require.NoError(t, err)
	require.Empty(t, sends, "a dry run writes no outbox entry")
}

func TestBrokenExitIsTracedNotFatal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, `
id: fragile-exit
trigger: { event: checkout_started }
exit: [{ event: page_viewed, where: 'event.items[0].price > 0' }]
steps: [{ wait: 1h, send: { template: t } }]
`), config.Policies{RequireConsent: true})
	require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
	_, err := h.RunUntil(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.NoError(t, h.Ingest(ctx, behavior.Record{ID: "pv", Kind: behavior.PageViewed, Source: "test", At: t0.Add(time.Minute), Email: "ann@example.com"}))
	_, err = h.RunUntil(ctx, t0.Add(3*time.Hour))
	require.NoError(t, err)
	js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, "ann@example.com"))
	require.NoError(t, err)
	require.Equal(t, storage.JourneyCompleted, js[0].Status)
	require.Equal(t, []string{"0:started", "1:scheduled", "1:exit_error", "1:queued", "1:completed"}, actions(js[0]))
	require.Contains(t, js[0].Trace[2].Detail, "exit[1].where: rule0.yaml:")
}

// A journey started for an anonymous visitor moves to the customer's
// profile when the visitor identifies; its step job still names the
// anonymous profile, so the step must follow the journey to its new
// profile and send once, to the customer.
func TestStepFollowsJourneyMergedToAnotherProfile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, `
id: browse
trigger: { event: checkout_started }
steps:
  - { wait: 1h, send: { template: d-browse } }
`), config.Policies{RequireConsent: true})
	anon := behavior.Record{
		ID: "c-anon", Kind: behavior.CheckoutStarted, Source: "web", Store: "main", At: t0, AnonymousID: "visitor-1",
		Value: 5400, Currency: "USD", Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400, Quantity: 1}},
	}
	// The customer's profile exists first, so it survives the merge.
	require.NoError(t, h.Ingest(ctx, behavior.Record{ID: "cust", Kind: behavior.CustomerUpdated, Source: "shopify", Store: "main", At: t0.Add(-24 * time.Hour), Email: "ann@example.com",
		Consent: &behavior.Consent{State: behavior.ConsentGranted}}))
	require.NoError(t, h.Ingest(ctx, anon))
	_, err := h.RunUntil(ctx, t0)
	require.NoError(t, err)
	anonProfile, err := h.Store.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentAnonymous, Value: "visitor-1"})
	require.NoError(t, err)
	js, err := h.Store.JourneysByProfile(ctx, anonProfile.ID)
	require.NoError(t, err)
	require.Len(t, js, 1, "the anonymous checkout starts a journey")

	// The visitor identifies: the anonymous profile merges into the
	// customer's.
	require.NoError(t, h.Ingest(ctx,
		behavior.Record{ID: "ident", Kind: behavior.CustomerUpdated, Source: "web", Store: "main", At: t0.Add(time.Minute), AnonymousID: "visitor-1", Email: "ann@example.com"},
	))
	moved, err := h.Store.Journey(ctx, js[0].ID)
	require.NoError(t, err)
	require.NotEqual(t, anonProfile.ID, moved.ProfileID, "the merge moved the journey")

	_, err = h.RunUntil(ctx, t0.Add(2*time.Hour))
	require.NoError(t, err)
	msgs := h.Recorder.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "ann@example.com", msgs[0].Message.To.Email)
	done, err := h.Store.Journey(ctx, js[0].ID)
	require.NoError(t, err)
	require.Equal(t, storage.JourneyCompleted, done.Status, "%v", actions(done))
}

// A rule triggered by email_sent still sees the records the sender
// appends; without one, no evaluation job is left for them.
func TestEmailSentIsEvaluatedOnlyWhenARuleReacts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const first = `
id: first
trigger: { event: checkout_started }
steps:
  - { wait: 1h, send: { template: d-first } }
`
	const followUp = `
id: follow-up
trigger: { event: email_sent }
steps:
  - { wait: 1h, send: { template: d-follow-up } }
`
	for _, tc := range []struct {
		rules []string
		want  []string
	}{
		{[]string{first}, []string{"d-first"}},
		{[]string{first, followUp}, []string{"d-first", "d-follow-up"}},
	} {
		h := newHarness(t, ruleSet(t, tc.rules...), config.Policies{RequireConsent: true})
		require.NoError(t, h.Ingest(ctx, checkout("c1", "ann@example.com", t0)))
		// first sends at 1h, follow-up at 2h (whose own email_sent would
		// start another at 3h).
		_, err := h.RunUntil(ctx, t0.Add(150*time.Minute))
		require.NoError(t, err)
		var got []string
		for _, m := range h.Recorder.Messages() {
			got = append(got, m.Message.TemplateID)
		}
		require.Equal(t, tc.want, got)
		if len(tc.rules) == 1 {
			counts, err := h.Store.CountJobs(ctx)
			require.NoError(t, err)
			require.Zero(t, counts[storage.JobScheduled]+counts[storage.JobRetryable]+counts[storage.JobRunning], "jobs left: %v", counts)
			// The checkout's evaluation and the step: none for email_sent.
			require.Equal(t, 2, counts[storage.JobCompleted], "jobs run: %v", counts)
		}
	}
}

// An exit that arrives before its trigger (a refund delivered before its
// order, as store retries and Stripe's unordered events do) still stops the
// journey, as it would have in order (the connectors audit saw the review
// request sent after a refund that came first).
func TestExitArrivingBeforeItsTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rule := `
id: post-purchase
trigger: { event: order_placed }
exit:
  - event: order_refunded
    where: 'event.refs.order_id == trigger.refs.order_id'
steps: [{ wait: 1h, send: { template: t } }]
`
	for _, tc := range []struct {
		name     string
		refundOf string // the order the early refund is for
		wantSend bool
	}{
		{"a refund of this order stops it", "o-1", false},
		{"a refund of another order does not", "o-0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ruleSet(t, rule), config.Policies{RequireConsent: true})
			granted := &behavior.Consent{State: behavior.ConsentGranted}
			refund := behavior.Record{ID: "r1", Kind: behavior.OrderRefunded, Source: "test", At: t0.Add(10 * time.Second), Email: "ann@example.com",
				Value: 5400, Refs: map[string]string{behavior.RefOrderID: tc.refundOf}}
			order := behavior.Record{ID: "o1", Kind: behavior.OrderPlaced, Source: "test", At: t0, Email: "ann@example.com", Consent: granted,
				Value: 5400, Refs: map[string]string{behavior.RefOrderID: "o-1"}}
			require.NoError(t, h.Ingest(ctx, refund))
			_, err := h.RunUntil(ctx, t0.Add(time.Minute))
			require.NoError(t, err)
			require.NoError(t, h.Ingest(ctx, order))
			_, err = h.RunUntil(ctx, t0.Add(3*time.Hour))
			require.NoError(t, err)
			ss, err := h.Sends(ctx)
			require.NoError(t, err)
			require.Equal(t, tc.wantSend, len(ss) == 1, "sends: %+v", ss)
			if !tc.wantSend {
				ds, err := h.Store.Decisions(ctx, profileID(t, h, "ann@example.com"))
				require.NoError(t, err)
				require.NotEmpty(t, ds)
				require.Contains(t, ds[len(ds)-1].Reason, "exit: order_refunded (record r1")
			}
		})
	}
}

// One person who started a rule twice as two profiles (browsing
// anonymously, then signed in) gets each step once after the profiles
// merge (the rules audit saw both journeys send).
func TestMergedProfilesSendOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, `
id: pv
trigger: { event: product_viewed }
steps: [{ wait: 1h, send: { template: t } }, { wait: 1h, send: { template: t2 } }]
`), config.Policies{RequireConsent: true})
	granted := &behavior.Consent{State: behavior.ConsentGranted}
	view := func(id string, at time.Duration, email, anon string) behavior.Record {
		return behavior.Record{ID: id, Kind: behavior.ProductViewed, Source: "test", At: t0.Add(at), Email: email, AnonymousID: anon,
			Items: []behavior.Item{{ProductID: "p9", Quantity: 1}}}
	}
	require.NoError(t, h.Ingest(ctx, behavior.Record{ID: "c0", Kind: behavior.CustomerUpdated, Source: "test", At: t0, Email: "m@example.com", Consent: granted}))
	require.NoError(t, h.Ingest(ctx, view("v1", time.Minute, "", "anon1")))
	require.NoError(t, h.Ingest(ctx, view("v2", 2*time.Minute, "m@example.com", "")))
	_, err := h.RunUntil(ctx, t0.Add(3*time.Minute))
	require.NoError(t, err)
	// The identify that joins them.
	require.NoError(t, h.Ingest(ctx, behavior.Record{ID: "c1", Kind: behavior.CustomerUpdated, Source: "test", At: t0.Add(3 * time.Minute), Email: "m@example.com", AnonymousID: "anon1"}))
	_, err = h.RunUntil(ctx, t0.Add(5*time.Hour))
	require.NoError(t, err)
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Len(t, ss, 2, "one send per step: %+v", ss)
	js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, "m@example.com"))
	require.NoError(t, err)
	require.Len(t, js, 2)
	var reasons []string
	for _, j := range js {
		reasons = append(reasons, j.Status+": "+j.Reason)
	}
	require.Contains(t, strings.Join(reasons, "|"), storage.ReasonMergedDuplicate)
}

// An exit stored before a step comes due wins even when its evaluation
// has not run yet (due at the same instant, or queued behind others under
// load): the rules audit's search at the very minute a reminder was due
// still got the reminder.
func TestStoredExitBeatsDueStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, ruleSet(t, `
id: sx
trigger: { event: product_viewed }
exit: [{ event: searched }]
steps: [{ wait: 1h, send: { template: t } }]
`), config.Policies{RequireConsent: true})
	granted := &behavior.Consent{State: behavior.ConsentGranted}
	require.NoError(t, h.Ingest(ctx, behavior.Record{ID: "v1", Kind: behavior.ProductViewed, Source: "test", At: t0, Email: "ann@example.com", Consent: granted,
		Items: []behavior.Item{{ProductID: "p1", Quantity: 1}}}))
	_, err := h.RunUntil(ctx, t0.Add(30*time.Minute))
	require.NoError(t, err)
	js, err := h.Store.JourneysByProfile(ctx, profileID(t, h, "ann@example.com"))
	require.NoError(t, err)
	require.Len(t, js, 1)
	require.True(t, js[0].DueAt.Equal(t0.Add(time.Hour)), "due %v", js[0].DueAt)
	// The search lands at the step's due instant, stored before either job
	// runs; the step's job is the older of the two due then.
	_, err = h.RunUntil(ctx, t0.Add(time.Hour-time.Nanosecond))
	require.NoError(t, err)
	h.Clock.Set(t0.Add(time.Hour))
	require.NoError(t, h.Ingest(ctx, behavior.Record{ID: "s1", Kind: behavior.Searched, Source: "test", At: t0.Add(time.Hour), Email: "ann@example.com", Query: "socks"}))
	_, err = h.RunUntil(ctx, t0.Add(3*time.Hour))
	require.NoError(t, err)
	ss, err := h.Sends(ctx)
	require.NoError(t, err)
	require.Empty(t, ss)
	js, err = h.Store.JourneysByProfile(ctx, profileID(t, h, "ann@example.com"))
	require.NoError(t, err)
	require.Equal(t, "exit: searched", js[0].Reason)
}
