package sending

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

// sentTo queues and delivers one send to email and returns it.
func sentTo(h *harness, email string) (storage.Send, storage.Profile) {
	h.t.Helper()
	id, p := h.queued(email)
	h.runDue()
	s := h.send(id)
	require.Equal(h.t, storage.SendSent, s.Status)
	return s, p
}

func engagement(kind behavior.Kind, id string, at time.Time, refs map[string]string) behavior.Record {
	return behavior.Record{ID: id, Kind: kind, Source: "sendgrid", At: at, Email: "ann@example.com", Refs: refs}
}

func TestObserveCountsEngagementOnce(t *testing.T) {
	h := newHarness(t)
	s, p := sentTo(h, "ann@example.com")
	bySendID := map[string]string{behavior.RefSendID: s.ID}
	records := []behavior.Record{
		engagement(behavior.EmailDelivered, "e1", t0.Add(time.Minute), bySendID),
		engagement(behavior.EmailOpened, "e2", t0.Add(2*time.Minute), map[string]string{behavior.RefSendID: s.ID, behavior.RefMachineOpen: "true"}),
		engagement(behavior.EmailOpened, "e3", t0.Add(3*time.Minute), bySendID),
		// No send id: found through the provider's message id.
		engagement(behavior.EmailClicked, "e4", t0.Add(4*time.Minute), map[string]string{behavior.RefMessageID: s.ProviderMessageID}),
		engagement(behavior.EmailClicked, "e5", t0.Add(5*time.Minute), bySendID),
		// Not ours: ignored.
		engagement(behavior.EmailClicked, "e6", t0.Add(5*time.Minute), map[string]string{behavior.RefSendID: "unknown", behavior.RefMessageID: "nope"}),
		// Not engagement: ignored.
		{ID: "e7", Kind: behavior.ProductViewed, Source: "web", At: t0, Email: "ann@example.com"},
	}
	for range 2 { // the second pass is a replay and must change nothing
		for _, r := range records {
			require.NoError(t, h.d.Observe(h.ctx, r, p))
		}
	}
	got := h.send(s.ID)
	assert.Equal(t, map[string]int{"delivered": 1, "opened": 1, "machine_opened": 1, "clicked": 2}, got.Engagement)
	assert.Equal(t, t0.Add(4*time.Minute).Format(time.RFC3339Nano), got.Meta[metaFirstClick])
	assert.Equal(t, t0.Add(5*time.Minute).Format(time.RFC3339Nano), got.Meta[metaLastClick])
	assert.Equal(t, storage.SendSent, got.Status, "engagement must not disturb the status")
}

func TestAttribution(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name           string
		attributeOpens bool
		touch          behavior.Kind
		machine        bool
		orderAfter     time.Duration // after the touch
		converted      int
		revenue        int64
		// sentConverted counts any order within the window after the
		// send, touched or not (the lift comparison's sent arm).
		sentConverted int
	}{
		{name: "order a day after a click converts", touch: behavior.EmailClicked, orderAfter: day, converted: 1, revenue: 5400, sentConverted: 1},
		{name: "order after the 5 day window does not", touch: behavior.EmailClicked, orderAfter: 5*day + time.Minute},
		{name: "an open does not count by default", touch: behavior.EmailOpened, orderAfter: time.Hour, sentConverted: 1},
		{name: "an open counts when configured", attributeOpens: true, touch: behavior.EmailOpened, orderAfter: time.Hour, converted: 1, revenue: 5400, sentConverted: 1},
		{name: "a machine open never counts", attributeOpens: true, touch: behavior.EmailOpened, machine: true, orderAfter: time.Hour, sentConverted: 1},
		{name: "delivery alone does not count", touch: behavior.EmailDelivered, orderAfter: time.Hour, sentConverted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *Options) { o.Policies.AttributeOpens = tt.attributeOpens })
			s, p := sentTo(h, "ann@example.com")
			refs := map[string]string{behavior.RefSendID: s.ID}
			if tt.machine {
				refs[behavior.RefMachineOpen] = "true"
			}
			touchAt := t0.Add(10 * time.Minute)
			require.NoError(t, h.d.Observe(h.ctx, engagement(tt.touch, "touch", touchAt, refs), p))
			order := behavior.Record{ID: "order-1", Kind: behavior.OrderPlaced, Source: "shopify", At: touchAt.Add(tt.orderAfter), Email: "ann@example.com", Value: 5400}
			require.NoError(t, h.d.Observe(h.ctx, order, p))
			require.NoError(t, h.d.Observe(h.ctx, order, p)) // replay

			stats, err := h.d.RuleStats(h.ctx)
			require.NoError(t, err)
			st := stats["cart-abandonment"]
			assert.Equal(t, 1, st.Sent)
			assert.Equal(t, tt.converted, st.Converted)
			assert.Equal(t, tt.revenue, st.Revenue)
			assert.Equal(t, tt.sentConverted, st.SentConverted)
		})
	}
}

func TestAttributionIsLastTouch(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Policies.FrequencyCap.Max = 0 })
	first, p := sentTo(h, "ann@example.com")
	tr := h.checkout("ann@example.com", t0)
	st := h.step(p, tr, "j2", 1)
	st.Rule, st.Journey.Rule = "browse-abandonment", "browse-abandonment"
	second := h.dispatch(st)
	require.Equal(t, dispatch.Queued, second.Action)
	h.runDue()

	click := func(id, sendID string, at time.Time) {
		require.NoError(t, h.d.Observe(h.ctx, engagement(behavior.EmailClicked, id, at, map[string]string{behavior.RefSendID: sendID}), p))
	}
	click("c1", first.ID, t0.Add(time.Hour))
	click("c2", second.SendID, t0.Add(2*time.Hour))
	click("c3", first.ID, t0.Add(5*time.Hour)) // after the order: not a touch for it
	order := behavior.Record{ID: "o1", Kind: behavior.OrderPlaced, Source: "shopify", At: t0.Add(3 * time.Hour), Email: "ann@example.com", Value: 1999}
	require.NoError(t, h.d.Observe(h.ctx, order, p))

	stats, err := h.d.RuleStats(h.ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, stats["browse-abandonment"].Converted)
	assert.Equal(t, int64(1999), stats["browse-abandonment"].Revenue)
	assert.Equal(t, 0, stats["cart-abandonment"].Converted)
	assert.Equal(t, 1, stats["cart-abandonment"].Clicked)
}

func TestHoldoutConversionsCountForLift(t *testing.T) {
	h := newHarness(t)
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	tr := h.checkout("ann@example.com", t0.Add(-time.Hour))
	s := h.step(p, tr, "j1", 1)
	s.Journey.Holdout = true
	out := h.dispatch(s)
	require.Equal(t, dispatch.Held, out.Action)
	h.runDue()
	assert.Equal(t, 0, h.sg.count(), "a held send is never sent")

	order := behavior.Record{ID: "o1", Kind: behavior.OrderPlaced, Source: "shopify", At: t0.Add(2 * time.Hour), Email: "ann@example.com", Value: 5400}
	require.NoError(t, h.d.Observe(h.ctx, order, p))
	require.NoError(t, h.d.Observe(h.ctx, order, p))
	stats, err := h.d.RuleStats(h.ctx)
	require.NoError(t, err)
	assert.Equal(t, RuleStats{Held: 1, HeldConverted: 1}, stats["cart-abandonment"])
}
