package sending

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

func TestGatePolicies(t *testing.T) {
	const email = "ann@example.com"
	paris, _ := time.LoadLocation("Europe/Paris")
	tests := []struct {
		name    string
		consent string
		tz      string
		now     time.Time
		opts    func(*Options)
		// setup runs after the profile and the trigger (an hour before now)
		// are stored and may edit the step.
		setup      func(h *harness, p storage.Profile, s *dispatch.StepSend)
		action     dispatch.Action
		reason     string
		until      time.Time
		wantWrites int // sends stored by the dispatch itself
	}{
		{
			name: "consent granted passes", consent: behavior.ConsentGranted,
			action: dispatch.Queued, wantWrites: 1,
		},
		{
			name: "no consent stops", consent: behavior.ConsentDenied,
			action: dispatch.Stopped, reason: "no consent (denied)",
		},
		{
			name:   "unknown consent stops",
			action: dispatch.Stopped, reason: "no consent (unknown)",
		},
		{
			name:   "unknown consent passes when consent is not required",
			opts:   func(o *Options) { o.Policies.RequireConsent = false },
			action: dispatch.Queued, wantWrites: 1,
		},
		{
			name: "manually suppressed stops", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				require.NoError(h.t, h.db.Suppress(h.ctx, storage.Suppression{Email: email, Reason: behavior.SuppressManual, At: h.clk.Now()}))
			},
			action: dispatch.Stopped, reason: "suppressed: manual",
		},
		{
			name: "hard bounce stops", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.EmailBounced, Source: "sendgrid", At: h.clk.Now().Add(-time.Minute), Email: email,
					Attrs: map[string]any{behavior.AttrPermanent: true}})
			},
			action: dispatch.Stopped, reason: "suppressed: bounced",
		},
		{
			name: "cart already bought stops", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.OrderPlaced, Source: "shopify", Store: "main", At: h.clk.Now().Add(-30 * time.Minute), Email: email, Value: 5400})
			},
			action: dispatch.Stopped, reason: "already bought",
		},
		{
			name: "an order before the checkout does not count", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.OrderPlaced, Source: "shopify", Store: "main", At: h.clk.Now().Add(-3 * time.Hour), Email: email, Value: 100})
			},
			action: dispatch.Queued, wantWrites: 1,
		},
		{
			name: "holdout is held and recorded", consent: behavior.ConsentGranted,
			setup:  func(h *harness, p storage.Profile, s *dispatch.StepSend) { s.Journey.Holdout = true },
			action: dispatch.Held, reason: "holdout", wantWrites: 1,
		},
		{
			name: "back in stock but sold out again stops", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				zero := int64(0)
				h.append(behavior.Record{Kind: behavior.ProductUpdated, Source: "shopify", Store: "main", At: h.clk.Now().Add(-time.Minute),
					Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400, Available: &zero}}})
				s.Trigger.Kind = behavior.BackInStock
			},
			action: dispatch.Stopped, reason: "out of stock again: p1",
		},
		{
			name: "price dropped but back up stops", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.ProductUpdated, Source: "shopify", Store: "main", At: h.clk.Now().Add(-time.Minute),
					Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 6000}}})
				s.Trigger.Kind = behavior.PriceDropped
				s.Trigger.Items[0].Price = 4900
			},
			action: dispatch.Stopped, reason: "price back up: p1",
		},
		{
			name: "price still low passes", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.ProductUpdated, Source: "shopify", Store: "main", At: h.clk.Now().Add(-time.Minute),
					Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 4900}}})
				s.Trigger.Kind = behavior.PriceDropped
				s.Trigger.Items[0].Price = 4900
			},
			action: dispatch.Queued, wantWrites: 1,
		},
		{
			// 22:30 in Paris is 16:30 in New York.
			name: "quiet hours in Paris move the send to 08:00 Paris", consent: behavior.ConsentGranted, tz: "Europe/Paris",
			now:    time.Date(2026, 3, 2, 21, 30, 0, 0, time.UTC),
			action: dispatch.Deferred, reason: "quiet hours until 08:00 Europe/Paris",
			until: time.Date(2026, 3, 3, 8, 0, 0, 0, paris),
		},
		{
			name: "the same instant in New York sends", consent: behavior.ConsentGranted, tz: "America/New_York",
			now:    time.Date(2026, 3, 2, 21, 30, 0, 0, time.UTC),
			action: dispatch.Queued, wantWrites: 1,
		},
		{
			// 06:00 UTC is 01:00 in New York: wait until 08:00 there, the same day.
			name: "after midnight in New York waits until 08:00 the same day", consent: behavior.ConsentGranted, tz: "America/New_York",
			now:    time.Date(2026, 3, 3, 6, 0, 0, 0, time.UTC),
			action: dispatch.Deferred, reason: "quiet hours until 08:00 America/New_York",
			until: time.Date(2026, 3, 3, 13, 0, 0, 0, time.UTC),
		},
		{
			// The audit's case: a Shopify customer in Louisville, KY, with
			// no zone from a browser: 21:30 UTC is 16:30 there.
			name: "an address in Kentucky gives the customer's zone", consent: behavior.ConsentGranted,
			now: time.Date(2026, 3, 2, 21, 30, 0, 0, time.UTC),
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.CustomerUpdated, Source: "shopify", Store: "main", At: h.clk.Now().Add(-time.Minute), Email: email,
					Person: &behavior.Person{Country: "US", Region: "KY"}})
			},
			action: dispatch.Queued, wantWrites: 1,
		},
		{
			name: "an address in France at the same instant waits for 08:00 Paris", consent: behavior.ConsentGranted,
			now: time.Date(2026, 3, 2, 21, 30, 0, 0, time.UTC),
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.CustomerUpdated, Source: "shopify", Store: "main", At: h.clk.Now().Add(-time.Minute), Email: email,
					Person: &behavior.Person{Country: "FR"}})
			},
			action: dispatch.Deferred, reason: "quiet hours until 08:00 Europe/Paris",
			until: time.Date(2026, 3, 3, 8, 0, 0, 0, paris),
		},
		{
			name: "a browser's zone wins over the address", consent: behavior.ConsentGranted, tz: "Europe/Paris",
			now: time.Date(2026, 3, 2, 21, 30, 0, 0, time.UTC),
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				h.append(behavior.Record{Kind: behavior.CustomerUpdated, Source: "shopify", Store: "main", At: h.clk.Now().Add(-time.Minute), Email: email,
					Person: &behavior.Person{Country: "US", Region: "KY"}})
			},
			action: dispatch.Deferred, reason: "quiet hours until 08:00 Europe/Paris",
		},
		{
			name: "an invalid zone falls back to the configured one", consent: behavior.ConsentGranted, tz: "Mars/Olympus",
			now:    time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC),
			action: dispatch.Deferred, reason: "quiet hours until 08:00 UTC",
			until: time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC),
		},
		{
			name: "over the cap waits until a slot frees", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				seedSends(h, p, -20*time.Hour, storage.SendSent)
				seedSends(h, p, -2*time.Hour, storage.SendPending)
			},
			action: dispatch.Deferred, reason: "frequency cap 2 per 1d",
			until: t0.Add(4 * time.Hour), // the send 20 h ago leaves the 24 h window
		},
		{
			name: "over the cap with on_cap skip skips", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				seedSends(h, p, -20*time.Hour, storage.SendSent)
				seedSends(h, p, -2*time.Hour, storage.SendUnknown)
				s.OnCap = "skip"
			},
			action: dispatch.Skipped, reason: "frequency cap 2 per 1d",
		},
		{
			name: "held, dead, skipped and old sends do not count for the cap", consent: behavior.ConsentGranted,
			setup: func(h *harness, p storage.Profile, s *dispatch.StepSend) {
				seedSends(h, p, -25*time.Hour, storage.SendSent)
				seedSends(h, p, -2*time.Hour, storage.SendHeld)
				seedSends(h, p, -2*time.Hour, storage.SendDead)
				seedSends(h, p, -2*time.Hour, storage.SendSkipped)
				seedSends(h, p, -1*time.Hour, storage.SendSent)
			},
			action: dispatch.Queued, wantWrites: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var edits []func(*Options)
			if tt.opts != nil {
				edits = append(edits, tt.opts)
			}
			h := newHarness(t, edits...)
			if !tt.now.IsZero() {
				h.clk.Set(tt.now)
			}
			p := h.profile(email, tt.consent, tt.tz)
			tr := h.checkout(email, h.clk.Now().Add(-time.Hour))
			s := h.step(p, tr, "j1", 1)
			if tt.setup != nil {
				tt.setup(h, p, &s)
				// The engine hands the dispatcher the profile as it stands
				// when the step runs, after whatever setup appended.
				fresh, err := h.db.Profile(h.ctx, p.ID)
				require.NoError(t, err)
				s.Profile = fresh
			}
			before, err := h.db.ListSends(h.ctx, "", 0)
			require.NoError(t, err)

			// A dry run first: the same decision, nothing written.
			dryStep := s
			dryStep.DryRun = true
			dry := h.dispatch(dryStep)
			assert.Equal(t, tt.action, dry.Action, "dry run: %s", dry.Reason)
			afterDry, err := h.db.ListSends(h.ctx, "", 0)
			require.NoError(t, err)
			require.Len(t, afterDry, len(before), "dry run wrote a send")

			out := h.dispatch(s)
			assert.Equal(t, tt.action, out.Action, "reason: %s", out.Reason)
			assert.Contains(t, out.Reason, tt.reason)
			if !tt.until.IsZero() {
				assert.True(t, tt.until.Equal(out.Until), "until = %v, want %v", out.Until, tt.until)
			}
			after, err := h.db.ListSends(h.ctx, "", 0)
			require.NoError(t, err)
			assert.Equal(t, tt.wantWrites, len(after)-len(before), "sends written")
			if tt.action == dispatch.Queued {
				n, _ := h.db.CountJobs(h.ctx)
				assert.Positive(t, n[storage.JobScheduled])
			}
			if tt.action == dispatch.Held {
				assert.Equal(t, storage.SendHeld, h.send(out.SendID).Status)
			}

		})
	}
}

// seedSends stores one send of another journey created at t0+offset.
func seedSends(h *harness, p storage.Profile, offset time.Duration, status string) {
	h.t.Helper()
	at := t0.Add(offset)
	_, _, err := h.db.CreateSend(h.ctx, storage.Send{
		ID: SendID("seed-"+status+at.String(), 1), JourneyID: "seed", Rule: "other", Step: 1,
		ProfileID: p.ID, Email: p.Email, Provider: "sendgrid", Status: status, CreatedAt: at, UpdatedAt: at,
	})
	require.NoError(h.t, err)
}

func TestCapLeavesLastSlotToHigherPriority(t *testing.T) {
	priorities := map[string]int{"vip-welcome": 50, "cart-abandonment": 10}
	h := newHarness(t, func(o *Options) {
		o.RulePriorityFunc = func(rule string) (int, bool) { p, ok := priorities[rule]; return p, ok }
	})
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	seedSends(h, p, -time.Hour, storage.SendSent) // one of two slots used
	require.NoError(t, h.db.PutJourney(h.ctx, storage.Journey{
		ID: "j-vip", Rule: "vip-welcome", ProfileID: p.ID, Step: 1, Status: storage.JourneyWaiting,
		StartedAt: t0.Add(-time.Hour), DueAt: t0.Add(30 * time.Second),
	}))
	tr := h.checkout("ann@example.com", t0.Add(-time.Hour))
	s := h.step(p, tr, "j-cart", 1)
	s.Priority = 10

	out := h.dispatch(s)
	assert.Equal(t, dispatch.Deferred, out.Action)
	assert.Contains(t, out.Reason, "vip-welcome")
	assert.True(t, out.Until.Equal(t0.Add(time.Minute)), "until %v", out.Until)

	// With the higher-priority rule no longer due, the step goes out.
	s.Priority = 60
	assert.Equal(t, dispatch.Queued, h.dispatch(s).Action)
}

func TestQuietWindow(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	tests := []struct {
		name       string
		start, end string
		now        time.Time
		want       time.Time // zero = not quiet
	}{
		{"spanning midnight, evening", "21:00", "08:00", time.Date(2026, 3, 2, 22, 0, 0, 0, ny), time.Date(2026, 3, 3, 8, 0, 0, 0, ny)},
		{"spanning midnight, at start", "21:00", "08:00", time.Date(2026, 3, 2, 21, 0, 0, 0, ny), time.Date(2026, 3, 3, 8, 0, 0, 0, ny)},
		{"spanning midnight, early morning", "21:00", "08:00", time.Date(2026, 3, 2, 7, 59, 0, 0, ny), time.Date(2026, 3, 2, 8, 0, 0, 0, ny)},
		{"spanning midnight, at end", "21:00", "08:00", time.Date(2026, 3, 2, 8, 0, 0, 0, ny), time.Time{}},
		{"spanning midnight, daytime", "21:00", "08:00", time.Date(2026, 3, 2, 12, 0, 0, 0, ny), time.Time{}},
		{"same-day window inside", "12:00", "14:00", time.Date(2026, 3, 2, 13, 0, 0, 0, ny), time.Date(2026, 3, 2, 14, 0, 0, 0, ny)},
		{"same-day window outside", "12:00", "14:00", time.Date(2026, 3, 2, 15, 0, 0, 0, ny), time.Time{}},
		// DST starts in New York on 2026-03-08 at 02:00: 08:00 is then UTC-4.
		{"across the DST change", "21:00", "08:00", time.Date(2026, 3, 7, 23, 0, 0, 0, ny), time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)},
		{"no window", "", "", time.Date(2026, 3, 2, 23, 0, 0, 0, ny), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseQuietHours(config.QuietHours{Start: tt.start, End: tt.end})
			require.NoError(t, err)
			got, _ := q.until(tt.now, ny)
			assert.True(t, got.Equal(tt.want), "got %v, want %v", got, tt.want)
		})
	}
	for _, bad := range []config.QuietHours{{Start: "9pm", End: "08:00"}, {Start: "21:00", End: "24:00"}, {Start: "21:00"}} {
		_, err := parseQuietHours(bad)
		assert.Error(t, err, "%+v", bad)
	}
}
