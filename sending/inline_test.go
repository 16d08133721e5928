package sending

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

// planned plans a consenting customer's checkout reminder and commits it
// as the journey engine does, returning the stored send (not delivered).
func (h *harness) planned(email string) storage.Send {
	h.t.Helper()
	p := h.profile(email, behavior.ConsentGranted, "")
	tr := h.checkout(email, h.clk.Now().Add(-time.Hour))
	st := h.step(p, tr, "j-"+email, 1)
	plan, err := h.d.Plan(h.ctx, st)
	require.NoError(h.t, err)
	require.Equal(h.t, dispatch.Queued, plan.Action, plan.Reason)
	require.NotNil(h.t, plan.Send)
	require.Empty(h.t, plan.SendJobs, "an inline send has no job")
	require.Equal(h.t, storage.SendSending, plan.Send.Status)
	j := st.Journey
	j.Status, j.UpdatedAt = storage.JourneyCompleted, h.clk.Now()
	s, created, err := h.db.CommitStep(h.ctx, storage.StepCommit{Journey: j, Send: plan.Send, SendJobs: plan.SendJobs})
	require.NoError(h.t, err)
	require.True(h.t, created)
	return s
}

func TestPlanThenDeliverSendsOnceWithItsRecord(t *testing.T) {
	h := newHarness(t)
	s := h.planned("ann@example.com")
	require.NoError(t, h.d.Deliver(h.ctx, s, true))

	require.Equal(t, 1, h.sg.count())
	got := h.send(s.ID)
	assert.Equal(t, storage.SendSent, got.Status)
	assert.Equal(t, "sg-msg-1", got.ProviderMessageID)
	assert.Equal(t, 1, got.Attempts)
	assert.True(t, got.SentAt.Equal(t0), "sent at %v", got.SentAt)
	assert.True(t, got.CreatedAt.Equal(s.CreatedAt), "created at moved: %v → %v", s.CreatedAt, got.CreatedAt)
	rec, err := h.db.Record(h.ctx, SentRecordID(s.ID))
	require.NoError(t, err)
	assert.Equal(t, "sg-msg-1", rec.Ref(behavior.RefMessageID))
	byProvider, err := h.db.SendByProviderMessageID(h.ctx, "sg-msg-1")
	require.NoError(t, err)
	assert.Equal(t, s.ID, byProvider.ID)

	// A replayed plan answers from the stored send and writes nothing.
	p, err := h.db.ProfileByEmail(h.ctx, "ann@example.com")
	require.NoError(t, err)
	trig, err := h.db.Record(h.ctx, behavior.DeriveID("test", "checkout", "ann@example.com", h.clk.Now().Add(-time.Hour).String()))
	require.NoError(t, err)
	again, err := h.d.Plan(h.ctx, h.step(p, trig, "j-ann@example.com", 1))
	require.NoError(t, err)
	assert.Nil(t, again.Send)
	assert.Equal(t, dispatch.Queued, again.Action)
	assert.Equal(t, s.ID, again.SendID)

	// No job was left behind to send it again.
	h.clk.Advance(24 * time.Hour)
	h.runDue()
	assert.Equal(t, 1, h.sg.count())
	assert.Error(t, h.d.Deliver(h.ctx, h.send(s.ID), true), "a sent send is not delivered again")
	assert.Equal(t, 1, h.sg.count())
}

func TestInlineRateLimitIsRetriedByAJobAfterRetryAfter(t *testing.T) {
	h := newHarness(t)
	h.sg.responses = []sgResponse{
		{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "120"}, body: `{"errors":[{"message":"too many requests"}]}`},
		{status: http.StatusAccepted, header: map[string]string{"X-Message-Id": "after-limit"}},
	}
	s := h.planned("ann@example.com")
	require.NoError(t, h.d.Deliver(h.ctx, s, true))
	require.Equal(t, 1, h.sg.count())
	got := h.send(s.ID)
	assert.Equal(t, storage.SendRetrying, got.Status)
	assert.Contains(t, got.LastError, "too many requests")

	h.clk.Advance(119 * time.Second)
	h.runDue()
	assert.Equal(t, 1, h.sg.count(), "retried before Retry-After")
	h.clk.Advance(2 * time.Second)
	h.runDue()
	assert.Equal(t, 2, h.sg.count())
	got = h.send(s.ID)
	assert.Equal(t, storage.SendSent, got.Status)
	assert.Equal(t, 2, got.Attempts)
	_, err := h.db.Record(h.ctx, SentRecordID(s.ID))
	require.NoError(t, err)
}

func TestInlinePermanentRejectionGoesToDead(t *testing.T) {
	h := newHarness(t)
	h.sg.responses = []sgResponse{{status: http.StatusBadRequest, body: `{"errors":[{"message":"bad template","field":"template_id"}]}`}}
	s := h.planned("ann@example.com")
	require.NoError(t, h.d.Deliver(h.ctx, s, true))
	got := h.send(s.ID)
	assert.Equal(t, storage.SendDead, got.Status)
	assert.Equal(t, reasonRejected, got.Reason)
	h.clk.Advance(24 * time.Hour)
	h.runDue()
	assert.Equal(t, 1, h.sg.count(), "a dead send is not retried")
	_, err := h.db.Record(h.ctx, SentRecordID(s.ID))
	assert.ErrorIs(t, err, storage.ErrNotFound)
}

func TestRecoverMarksSendsLeftSendingUnknown(t *testing.T) {
	h := newHarness(t)
	s := h.planned("ann@example.com")
	// The process dies between the commit and the provider's answer.
	require.NoError(t, h.db.Close())
	h.open()
	_, err := h.sched.Recover(h.ctx)
	require.NoError(t, err)
	got := h.send(s.ID)
	assert.Equal(t, storage.SendUnknown, got.Status)
	assert.Equal(t, reasonInterrupted, got.Reason)
	assert.Empty(t, statusIDs(t, h, storage.SendSending))
	h.clk.Advance(24 * time.Hour)
	h.runDue()
	assert.Equal(t, 0, h.sg.count(), "an interrupted send is never repeated")
}

func statusIDs(t *testing.T, h *harness, status string) []string {
	t.Helper()
	sends, err := h.db.ListSends(h.ctx, status, 0)
	require.NoError(t, err)
	var ids []string
	for _, s := range sends {
		ids = append(ids, s.ID)
	}
	return ids
}

// The email_sent record gets an evaluation job only when a rule reacts
// to email_sent; otherwise that job would find nothing to do.
func TestDeliverEvaluatesEmailSentOnlyWhenARuleReacts(t *testing.T) {
	for _, evaluate := range []bool{false, true} {
		h := newHarness(t)
		s := h.planned("ann@example.com")
		before, err := h.db.CountJobs(h.ctx)
		require.NoError(t, err)
		require.NoError(t, h.d.Deliver(h.ctx, s, evaluate))
		after, err := h.db.CountJobs(h.ctx)
		require.NoError(t, err)
		_, err = h.db.Record(h.ctx, SentRecordID(s.ID))
		require.NoError(t, err, "the record is stored either way")
		want := 0
		if evaluate {
			want = 1
		}
		assert.Equal(t, want, after[storage.JobScheduled]-before[storage.JobScheduled], "evaluate=%v: evaluation jobs enqueued", evaluate)
	}
}

// blockingSender holds every call until release is closed.
type blockingSender struct {
	next    connectors.Sender
	entered chan struct{}
	release chan struct{}
}

func (b blockingSender) Name() string { return b.next.Name() }

func (b blockingSender) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	close(b.entered)
	<-b.release
	return b.next.Send(ctx, m)
}

// A provider call can take seconds; the send's lock (whose stripes
// engagement updates and admin actions share) must not be held for it.
func TestDeliverDoesNotHoldTheSendLockDuringTheCall(t *testing.T) {
	h := newHarness(t)
	s := h.planned("ann@example.com")
	b := blockingSender{next: h.d.senders["sendgrid"], entered: make(chan struct{}), release: make(chan struct{})}
	h.d.senders["sendgrid"] = b
	done := make(chan error, 1)
	go func() { done <- h.d.Deliver(h.ctx, s, false) }()
	<-b.entered
	answered := make(chan error, 1)
	go func() { _, err := h.d.DiscardSend(h.ctx, s.ID); answered <- err }()
	select {
	case err := <-answered:
		assert.ErrorIs(t, err, ErrState, "a send being delivered is not discardable")
	case <-time.After(5 * time.Second):
		t.Error("DiscardSend waited for the provider call")
	}
	close(b.release)
	require.NoError(t, <-done)
	assert.Equal(t, storage.SendSent, h.send(s.ID).Status)
}
