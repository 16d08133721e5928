package sending

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

func TestDispatchWritesOneOutboxEntryPerStep(t *testing.T) {
	h := newHarness(t)
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	tr := h.checkout("ann@example.com", t0.Add(-time.Hour))
	s := h.step(p, tr, "j1", 1)

	first := h.dispatch(s)
	require.Equal(t, dispatch.Queued, first.Action)
	assert.Equal(t, SendID("j1", 1), first.SendID)
	again := h.dispatch(s)
	assert.Equal(t, dispatch.Queued, again.Action)
	assert.Equal(t, first.SendID, again.SendID)

	all, err := h.db.ListSends(h.ctx, "", 0)
	require.NoError(t, err)
	require.Len(t, all, 1)
	send := all[0]
	assert.Equal(t, storage.SendPending, send.Status)
	assert.Equal(t, "sendgrid", send.Provider)
	assert.Equal(t, "ann@example.com", send.Email)
	assert.Equal(t, p.ID, send.ProfileID)

	var msg connectors.Message
	require.NoError(t, json.Unmarshal(send.Message, &msg))
	assert.Equal(t, "d-0123456789abcdef", msg.TemplateID)
	assert.Equal(t, send.ID, msg.Args[connectors.ArgSendID])
	assert.Equal(t, []string{"cart-abandonment", "step-1"}, msg.Tags)
	assert.Equal(t, "List-Unsubscribe=One-Click", msg.Headers["List-Unsubscribe-Post"])
	assert.Equal(t, "<"+h.d.UnsubscribeURL("ann@example.com", send.ID)+">", msg.Headers["List-Unsubscribe"])

	jobs, err := h.db.ClaimDueJobs(h.ctx, h.clk.Now(), 10)
	require.NoError(t, err)
	var sendJobs int
	for _, j := range jobs {
		if j.Kind == JobSend {
			sendJobs++
			assert.Equal(t, "send:"+send.ID, j.UniqueKey)
		}
	}
	assert.Equal(t, 1, sendJobs, "exactly one send job")
}

func TestSendDeliversAndRecordsEmailSent(t *testing.T) {
	h := newHarness(t)
	id, p := h.queued("ann@example.com")
	h.runDue()

	require.Equal(t, 1, h.sg.count())
	body := h.sg.body(t, 0)
	pers := body["personalizations"].([]any)[0].(map[string]any)
	data := pers["dynamic_template_data"].(map[string]any)
	item := data["items"].([]any)[0].(map[string]any)
	assert.Equal(t, "Trail Runner", item["title"])
	assert.Equal(t, "$54.00", item["price"])
	assert.Equal(t, "https://example.com/checkouts/abc/recover", data["recovery_url"])
	assert.Equal(t, "WELCOME10", data["discount_code"])
	assert.Equal(t, map[string]any{"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"}, data["customer"])
	assert.Equal(t, id, body["custom_args"].(map[string]any)[connectors.ArgSendID])

	s := h.send(id)
	assert.Equal(t, storage.SendSent, s.Status)
	assert.Equal(t, "sg-msg-1", s.ProviderMessageID)
	assert.True(t, s.SentAt.Equal(t0), "sent at %v", s.SentAt)
	assert.Equal(t, 1, s.Attempts)

	rec, err := h.db.Record(h.ctx, SentRecordID(id))
	require.NoError(t, err)
	assert.Equal(t, behavior.EmailSent, rec.Kind)
	assert.Equal(t, id, rec.Ref(behavior.RefSendID))
	assert.Equal(t, "cart-abandonment", rec.Ref(behavior.RefRuleID))
	assert.Equal(t, "1", rec.Ref(behavior.RefStep))
	assert.Equal(t, "sg-msg-1", rec.Ref(behavior.RefMessageID))
	assert.Equal(t, "ann@example.com", rec.Email)
	recs, err := h.db.RecordsByProfile(h.ctx, p.ID, storage.RecordQuery{Kinds: []behavior.Kind{behavior.EmailSent}})
	require.NoError(t, err)
	assert.Len(t, recs, 1, "the email_sent record belongs to the profile")

	// The job is done; running again sends nothing.
	h.clk.Advance(time.Hour)
	h.runDue()
	assert.Equal(t, 1, h.sg.count())
	assert.NotContains(t, h.logs.String(), "ann@example.com", "full address in logs")
}

func TestRateLimitedThenAcceptedSendsOnceAfterRetryAfter(t *testing.T) {
	h := newHarness(t)
	h.sg.responses = []sgResponse{
		{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "120"}, body: `{"errors":[{"message":"too many requests"}]}`},
		{status: http.StatusAccepted, header: map[string]string{"X-Message-Id": "after-limit"}},
	}
	id, _ := h.queued("ann@example.com")

	h.runDue()
	require.Equal(t, 1, h.sg.count())
	s := h.send(id)
	assert.Equal(t, storage.SendRetrying, s.Status)
	assert.Contains(t, s.LastError, "too many requests")
	// The operator sees when the next attempt is, not only what the
	// provider asked for (the backoff may be longer).
	assert.Contains(t, s.LastError, "provider asked to wait 2m0s")
	assert.Contains(t, s.LastError, "next attempt in 2m0s")

	h.clk.Advance(119 * time.Second)
	h.runDue()
	assert.Equal(t, 1, h.sg.count(), "retried before Retry-After")

	h.clk.Advance(2 * time.Second)
	h.runDue()
	assert.Equal(t, 2, h.sg.count())
	s = h.send(id)
	assert.Equal(t, storage.SendSent, s.Status)
	assert.Equal(t, "after-limit", s.ProviderMessageID)
	assert.Equal(t, 2, s.Attempts)

	h.clk.Advance(time.Hour)
	h.runDue()
	assert.Equal(t, 2, h.sg.count(), "one accepted send, no more requests")
}

func TestOutageIsRetriedWithBackoffThenSent(t *testing.T) {
	h := newHarness(t)
	for range 5 {
		h.sg.responses = append(h.sg.responses, sgResponse{status: http.StatusServiceUnavailable, body: "unavailable"})
	}
	id, _ := h.queued("ann@example.com")

	var gaps []time.Duration
	last := h.clk.Now()
	for h.sg.count() < 6 {
		before := h.sg.count()
		h.runDue()
		if h.sg.count() > before {
			gaps = append(gaps, h.clk.Now().Sub(last))
			last = h.clk.Now()
		}
		h.clk.Advance(30 * time.Second)
		require.Less(t, h.clk.Now().Sub(t0), 2*time.Hour, "never sent")
	}
	s := h.send(id)
	assert.Equal(t, storage.SendSent, s.Status)
	assert.Equal(t, 6, s.Attempts)
	// Backoff is n minutes after attempt n (the harness's BackoffFunc).
	require.Len(t, gaps, 6)
	for i := 1; i < len(gaps); i++ {
		assert.GreaterOrEqual(t, gaps[i], time.Duration(i)*time.Minute, "gap %d", i)
	}
}

func TestPermanentRejectionGoesToDead(t *testing.T) {
	h := newHarness(t)
	h.sg.responses = []sgResponse{{status: http.StatusBadRequest, body: `{"errors":[{"message":"The template_id is not a valid template ID.","field":"template_id"}]}`}}
	id, _ := h.queued("ann@example.com")
	h.runDue()

	dead, err := h.db.ListSends(h.ctx, storage.SendDead, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, id, dead[0].ID)
	assert.Contains(t, dead[0].LastError, "template_id: The template_id is not a valid template ID.")
	assert.Equal(t, reasonRejected, dead[0].Reason)

	h.clk.Advance(24 * time.Hour)
	h.runDue()
	assert.Equal(t, 1, h.sg.count(), "a dead send is not retried")
	_, err = h.db.Record(h.ctx, SentRecordID(id))
	assert.ErrorIs(t, err, storage.ErrNotFound)

	// The admin retries it: one more request, now accepted.
	s, err := h.d.RetrySend(h.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, storage.SendPending, s.Status)
	h.runDue()
	assert.Equal(t, 2, h.sg.count())
	assert.Equal(t, storage.SendSent, h.send(id).Status)
	_, err = h.d.RetrySend(h.ctx, id)
	assert.ErrorIs(t, err, ErrState)
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxAttempts = 3 })
	for range 10 {
		h.sg.responses = append(h.sg.responses, sgResponse{status: http.StatusInternalServerError})
	}
	id, _ := h.queued("ann@example.com")
	for range 20 {
		h.runDue()
		h.clk.Advance(10 * time.Minute)
	}
	assert.Equal(t, 3, h.sg.count())
	s := h.send(id)
	assert.Equal(t, storage.SendDead, s.Status)
	assert.Equal(t, "gave up after 3 attempts", s.Reason)
}

// crashingSender lets the request reach the provider, then stops the
// goroutine before the answer is recorded, like a process killed
// between marking the send "sending" and the provider's answer.
type crashingSender struct{ next connectors.Sender }

func (c crashingSender) Name() string { return c.next.Name() }

func (c crashingSender) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	_, _ = c.next.Send(ctx, m)
	runtime.Goexit()
	return connectors.Result{}, nil
}

func TestCrashAfterRequestLeftIsNeverRepeated(t *testing.T) {
	h := newHarness(t)
	id, _ := h.queued("ann@example.com")
	h.d.senders["sendgrid"] = crashingSender{next: h.d.senders["sendgrid"]}

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h.sched.RunDue(h.ctx, h.clk.Now())
	}()
	<-done
	require.Equal(t, 1, h.sg.count(), "the request reached the provider")
	assert.Equal(t, storage.SendSending, h.send(id).Status)

	// Restart: reopen the file, recover jobs left running, run them.
	require.NoError(t, h.db.Close())
	h.open()
	n, err := h.db.RecoverJobs(h.ctx, h.clk.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	h.runDue()
	h.clk.Advance(24 * time.Hour)
	h.runDue()

	assert.Equal(t, 1, h.sg.count(), "a second request was made")
	s := h.send(id)
	assert.Equal(t, storage.SendUnknown, s.Status)
	assert.Equal(t, reasonInterrupted, s.Reason)
	unknown, _ := h.db.ListSends(h.ctx, storage.SendUnknown, 0)
	assert.Len(t, unknown, 1)
}

func TestUnsubscribeBetweenDispatchAndDeliveryWins(t *testing.T) {
	h := newHarness(t)
	id, _ := h.queued("ann@example.com")
	require.NoError(t, h.db.Suppress(h.ctx, storage.Suppression{Email: "ann@example.com", Reason: behavior.SuppressUnsubscribed, At: h.clk.Now()}))
	h.runDue()
	assert.Equal(t, 0, h.sg.count())
	s := h.send(id)
	assert.Equal(t, storage.SendSkipped, s.Status)
	assert.Equal(t, "suppressed: unsubscribed", s.Reason)
	// The dispatch of the same step answers from the outbox.
	out := h.dispatch(h.step(storage.Profile{ID: s.ProfileID, Email: s.Email}, behavior.Record{}, "j-ann@example.com", 1))
	assert.Equal(t, dispatch.Skipped, out.Action)
}

func TestDiscardSend(t *testing.T) {
	h := newHarness(t)
	id, _ := h.queued("ann@example.com")
	s, err := h.d.DiscardSend(h.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, storage.SendSkipped, s.Status)
	h.runDue()
	assert.Equal(t, 0, h.sg.count())
	_, err = h.d.DiscardSend(h.ctx, id)
	assert.ErrorIs(t, err, ErrState)
}

func TestLogProviderWritesWhatWouldBeSent(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.DefaultProvider = "log" })
	id, _ := h.queued("ann@example.com")
	h.runDue()
	s := h.send(id)
	assert.Equal(t, storage.SendSent, s.Status)
	assert.Equal(t, "log-"+id, s.ProviderMessageID)
	assert.Equal(t, 0, h.sg.count())
	assert.True(t, strings.Contains(h.logs.String(), "a***@example.com"))
}

func TestUnrenderableStepIsSkippedAndVisible(t *testing.T) {
	h := newHarness(t)
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	tr := h.checkout("ann@example.com", t0.Add(-time.Hour))
	s := h.step(p, tr, "j1", 1)
	s.Send = dispatch.SendSpec{Subject: "Hi", HTMLFile: "/nonexistent/cart.html"}
	out := h.dispatch(s)
	assert.Equal(t, dispatch.Skipped, out.Action)
	assert.Contains(t, out.Reason, "cannot render")
	dead, _ := h.db.ListSends(h.ctx, storage.SendDead, 0)
	require.Len(t, dead, 1)
	assert.Contains(t, dead[0].LastError, "nonexistent")
	assert.Equal(t, dispatch.Skipped, h.dispatch(s).Action, "a repeated dispatch answers the same")

	s.Journey.ID, s.Send.Provider = "j2", "nope"
	s.Send.Template = "d-1"
	assert.Contains(t, h.dispatch(s).Reason, `no sender for provider "nope"`)
}

// TestIDsFollowTheirJourney checks that a step's send and its email_sent
// record sort with their journey (led by the journey id's first half) and
// stay distinct per step and per journey.
func TestIDsFollowTheirJourney(t *testing.T) {
	start := time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC)
	j1 := behavior.DeriveOrderedID(start, "journey", "r", "p1", "x1")
	j2 := behavior.DeriveOrderedID(start.Add(time.Second), "journey", "r", "p2", "x2")
	tests := []struct {
		journey string
		step    int
	}{{j1, 1}, {j1, 2}, {j2, 1}, {"j1", 1}, {"j-ann@example.com/x", 1}}
	seen := map[string]bool{}
	for _, tc := range tests {
		send := SendID(tc.journey, tc.step)
		rec := SentRecordID(send)
		assert.Regexp(t, `^[0-9a-f]{32}$`, send)
		assert.Regexp(t, `^[0-9a-f]{32}$`, rec)
		if tc.journey == j1 || tc.journey == j2 {
			assert.Equal(t, tc.journey[:16], send[:16], "send of %s step %d", tc.journey, tc.step)
			assert.Equal(t, send[:16], rec[:16], "email_sent of %s", send)
		}
		assert.Equal(t, send, SendID(tc.journey, tc.step), "deterministic")
		assert.False(t, seen[send] || seen[rec], "ids repeat")
		seen[send], seen[rec] = true, true
	}
	assert.Less(t, SendID(j1, 2), SendID(j2, 1), "sends sort as their journeys started")
}
