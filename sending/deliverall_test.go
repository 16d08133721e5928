package sending

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

// plannedVia is planned with the step's provider set.
func (h *harness) plannedVia(email, provider string) storage.Send {
	h.t.Helper()
	p := h.profile(email, behavior.ConsentGranted, "")
	tr := h.checkout(email, h.clk.Now().Add(-time.Hour))
	st := h.step(p, tr, "j-"+email, 1)
	st.Send.Provider = provider
	plan, err := h.d.Plan(h.ctx, st)
	require.NoError(h.t, err)
	require.Equal(h.t, dispatch.Queued, plan.Action, plan.Reason)
	j := st.Journey
	j.Status, j.UpdatedAt = storage.JourneyCompleted, h.clk.Now()
	res, err := h.db.CommitSteps(h.ctx, []storage.StepCommit{{Journey: j, Send: plan.Send}})
	require.NoError(h.t, err)
	require.True(h.t, res[0].Created)
	return res[0].Send
}

// TestDeliverAllSettlesEachSend: a batch mixing a provider that takes
// batches (log) with one called per send (SendGrid) delivers each send
// once; those that went out are recorded with their email_sent records,
// a rate-limited one is retried by a job as Deliver would, and a send not
// in "sending" is refused on its own without holding back the others.
func TestDeliverAllSettlesEachSend(t *testing.T) {
	h := newHarness(t)
	h.sg.responses = []sgResponse{
		{status: http.StatusAccepted, header: map[string]string{"X-Message-Id": "sg-ok"}},
		{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "60"}, body: `{"errors":[{"message":"too many requests"}]}`},
	}
	logA := h.plannedVia("a@example.com", "log")
	sg1 := h.plannedVia("b@example.com", "sendgrid")
	logB := h.plannedVia("c@example.com", "log")
	sg2 := h.plannedVia("d@example.com", "sendgrid")
	notSending := logB
	notSending.ID, notSending.Status = "not-sending", storage.SendPending

	errs := h.d.DeliverAll(h.ctx, []storage.Send{logA, sg1, logB, notSending, sg2}, true)
	require.Len(t, errs, 5)
	for i, err := range errs {
		if i == 3 {
			assert.ErrorIs(t, err, ErrState)
			continue
		}
		assert.NoError(t, err, "send %d", i)
	}

	require.Equal(t, 2, h.sg.count(), "one SendGrid call per send")
	outbox, err := os.ReadFile(filepath.Join(filepath.Dir(h.path), "mail", logsender.OutboxFile))
	require.NoError(t, err)
	assert.Equal(t, 2, bytes.Count(outbox, []byte("\n")), "both log sends in the outbox once:\n%s", outbox)

	for _, s := range []storage.Send{logA, logB} {
		got := h.send(s.ID)
		assert.Equal(t, storage.SendSent, got.Status, s.ID)
		assert.Equal(t, "log-"+s.ID, got.ProviderMessageID)
		_, err := h.db.Record(h.ctx, SentRecordID(s.ID))
		assert.NoError(t, err, "email_sent of %s", s.ID)
	}
	// SendGrid answered the two calls in whichever order they arrived.
	a, b := h.send(sg1.ID), h.send(sg2.ID)
	if a.Status != storage.SendSent {
		a, b = b, a
	}
	assert.Equal(t, storage.SendSent, a.Status)
	assert.Equal(t, "sg-ok", a.ProviderMessageID)
	assert.Equal(t, storage.SendRetrying, b.Status)
	assert.Contains(t, b.LastError, "too many requests")
	_, err = h.db.Record(h.ctx, SentRecordID(b.ID))
	assert.ErrorIs(t, err, storage.ErrNotFound, "no email_sent for the rate-limited send")

	// The retry job sends the rate-limited one after Retry-After; nothing
	// else goes out again.
	h.clk.Advance(2 * time.Minute)
	h.runDue()
	assert.Equal(t, 3, h.sg.count())
	assert.Equal(t, storage.SendSent, h.send(b.ID).Status)
	outbox, err = os.ReadFile(filepath.Join(filepath.Dir(h.path), "mail", logsender.OutboxFile))
	require.NoError(t, err)
	assert.Equal(t, 2, bytes.Count(outbox, []byte("\n")))
}
