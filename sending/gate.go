package sending

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

// gate decides whether a step may send now (Queued), is held out, must
// wait (Deferred), will not send (Skipped) or ends the journey (Stopped).
// The order is the package doc's.
func (d *Dispatcher) gate(ctx context.Context, s dispatch.StepSend, now time.Time) (dispatch.Outcome, error) {
	if s.Journey.Holdout {
		return dispatch.Outcome{Action: dispatch.Held, Reason: "holdout"}, nil
	}
	email := recipient(s.Profile)
	if email == "" {
		return stopped("no email address"), nil
	}
	if reason, err := d.blocked(ctx, email, s.Profile); err != nil || reason != "" {
		return stopped(reason), err
	}
	if reason, err := d.irrelevant(ctx, s); err != nil || reason != "" {
		return stopped(reason), err
	}
	if until, reason := d.quietUntil(s.Profile, now); !until.IsZero() {
		return dispatch.Outcome{Action: dispatch.Deferred, Until: until, Reason: reason}, nil
	}
	return d.capped(ctx, s, now)
}

func stopped(reason string) dispatch.Outcome {
	return dispatch.Outcome{Action: dispatch.Stopped, Reason: reason}
}

// blocked checks the suppression list and consent; it is run at dispatch
// and again just before the provider call.
func (d *Dispatcher) blocked(ctx context.Context, email string, p storage.Profile) (string, error) {
	sup, ok, err := d.store.Suppressed(ctx, email)
	if err != nil {
		return "", fmt.Errorf("suppression list: %w", err)
	}
	if ok {
		return "suppressed: " + sup.Reason, nil
	}
	if d.opts.Policies.RequireConsent && p.Consent.State != behavior.ConsentGranted {
		state := p.Consent.State
		if state == "" {
			state = "unknown"
		}
		return "no consent (" + state + ")", nil
	}
	return "", nil
}

// irrelevant runs the still-relevant guards of the trigger's kind.
func (d *Dispatcher) irrelevant(ctx context.Context, s dispatch.StepSend) (string, error) {
	t := s.Trigger
	switch t.Kind {
	case behavior.CheckoutStarted, behavior.CartUpdated:
		if s.Profile.ID == "" {
			return "", nil
		}
		// The profile keeps the time of its latest order (every append
		// and merge moves it forward): without one at or after the
		// trigger there is nothing to look up. Reading the records would
		// decode at least the trigger itself, on every due step.
		if last := s.Profile.LastAt[behavior.OrderPlaced]; last.Before(t.At) {
			return "", nil
		}
		orders, err := d.store.RecordsByProfile(ctx, s.Profile.ID, storage.RecordQuery{
			Since: t.At, Kinds: []behavior.Kind{behavior.OrderPlaced}, Limit: 1,
		})
		if err != nil {
			return "", fmt.Errorf("orders since trigger: %w", err)
		}
		if len(orders) > 0 {
			return "already bought (order " + orders[0].ID + ")", nil
		}
	case behavior.BackInStock:
		for _, pid := range behavior.ProductIDs(t.Items) {
			p, err := d.store.Product(ctx, pid)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("product %s: %w", pid, err)
			}
			if !p.InStock() {
				return "out of stock again: " + pid, nil
			}
		}
	case behavior.PriceDropped:
		for _, it := range t.Items {
			if it.ProductID == "" || it.Price <= 0 {
				continue
			}
			p, err := d.store.Product(ctx, it.ProductID)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("product %s: %w", it.ProductID, err)
			}
			if p.Price > it.Price {
				return "price back up: " + it.ProductID, nil
			}
		}
	}
	return "", nil
}

// countsForCap lists the statuses that used (or may have used) a slot.
func countsForCap(status string) bool {
	switch status {
	case storage.SendPending, storage.SendSending, storage.SendSent, storage.SendRetrying, storage.SendUnknown:
		return true
	}
	return false
}

// capped applies the frequency cap across all rules.
func (d *Dispatcher) capped(ctx context.Context, s dispatch.StepSend, now time.Time) (dispatch.Outcome, error) {
	queued := dispatch.Outcome{Action: dispatch.Queued}
	limit := d.opts.Policies.FrequencyCap.Max
	if limit <= 0 || s.Profile.ID == "" {
		return queued, nil
	}
	per := d.opts.Policies.FrequencyCap.Per.D()
	since := now.Add(-per)
	sends, err := d.store.SendsByProfileSince(ctx, s.Profile.ID, since)
	if err != nil {
		return dispatch.Outcome{}, fmt.Errorf("sends of profile: %w", err)
	}
	var recent []time.Time // oldest first, as SendsByProfileSince returns them
	for _, x := range sends {
		if countsForCap(x.Status) && x.CreatedAt.After(since) && !x.CreatedAt.After(now) {
			recent = append(recent, x.CreatedAt)
		}
	}
	capText := strconv.Itoa(limit) + " per " + formatDuration(per)
	if len(recent) >= limit {
		if s.OnCap == "skip" {
			return dispatch.Outcome{Action: dispatch.Skipped, Reason: "frequency cap " + capText}, nil
		}
		// The slot frees when the oldest send that keeps us at the cap
		// leaves the window.
		until := recent[len(recent)-limit].Add(per)
		return dispatch.Outcome{Action: dispatch.Deferred, Until: until, Reason: "frequency cap " + capText}, nil
	}
	if d.opts.RulePriorityFunc == nil {
		return queued, nil
	}
	free := limit - len(recent)
	journeys, err := d.store.JourneysByProfileUntraced(ctx, s.Profile.ID) // only active ones count
	if err != nil {
		return dispatch.Outcome{}, fmt.Errorf("journeys of profile: %w", err)
	}
	var higher []string
	for _, j := range journeys {
		if j.ID == s.Journey.ID || !j.Active() || j.Holdout || j.DueAt.IsZero() || j.DueAt.After(now.Add(time.Minute)) {
			continue
		}
		if p, ok := d.opts.RulePriorityFunc(j.Rule); ok && p > s.Priority {
			higher = append(higher, j.Rule)
		}
	}
	if len(higher) >= free {
		if s.OnCap == "skip" {
			return dispatch.Outcome{Action: dispatch.Skipped, Reason: "frequency cap " + capText + " left to higher-priority " + strings.Join(higher, ", ")}, nil
		}
		return dispatch.Outcome{
			Action: dispatch.Deferred, Until: now.Add(time.Minute),
			Reason: "frequency cap " + capText + ": last slot left to higher-priority " + strings.Join(higher, ", "),
		}, nil
	}
	return queued, nil
}

// quietWindow is a daily window in minutes after local midnight; start >
// end spans midnight. The zero value is no window.
type quietWindow struct {
	start, end int
	set        bool
}

func parseQuietHours(q config.QuietHours) (quietWindow, error) {
	if q.Start == "" && q.End == "" {
		return quietWindow{}, nil
	}
	start, err := parseClock(q.Start)
	if err != nil {
		return quietWindow{}, fmt.Errorf("quiet_hours.start: %w", err)
	}
	end, err := parseClock(q.End)
	if err != nil {
		return quietWindow{}, fmt.Errorf("quiet_hours.end: %w", err)
	}
	if start == end {
		return quietWindow{}, nil
	}
	return quietWindow{start: start, end: end, set: true}, nil
}

// parseClock reads "HH:MM" as minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return hh*60 + mm, nil
}

// zone is the customer's time zone: the profile's when it names a valid
// IANA zone, else the configured default.
func (d *Dispatcher) zone(p storage.Profile) *time.Location {
	name := strings.TrimSpace(p.Zone())
	if name == "" {
		return d.opts.Timezone
	}
	if v, ok := d.zones.Load(name); ok {
		if loc, _ := v.(*time.Location); loc != nil {
			return loc
		}
		return d.opts.Timezone
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		loc = nil
	}
	d.zones.Store(name, loc)
	if loc == nil {
		return d.opts.Timezone
	}
	return loc
}

// quietUntil returns the end of the quiet window when now falls inside it
// in the customer's zone, else the zero time.
func (d *Dispatcher) quietUntil(p storage.Profile, now time.Time) (time.Time, string) {
	return d.quiet.until(now, d.zone(p))
}

func (q quietWindow) until(now time.Time, loc *time.Location) (time.Time, string) {
	if !q.set {
		return time.Time{}, ""
	}
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	y, mo, day := local.Date()
	endOn := func(dayOffset int) time.Time {
		// time.Date normalizes a wall time that a DST jump skips.
		return time.Date(y, mo, day+dayOffset, q.end/60, q.end%60, 0, 0, loc)
	}
	var end time.Time
	switch {
	case q.start < q.end && m >= q.start && m < q.end:
		end = endOn(0)
	case q.start > q.end && m >= q.start:
		end = endOn(1)
	case q.start > q.end && m < q.end:
		end = endOn(0)
	default:
		return time.Time{}, ""
	}
	return end.UTC(), fmt.Sprintf("quiet hours until %02d:%02d %s", q.end/60, q.end%60, loc.String())
}

// formatDuration prints whole days as "Nd", the rest as Go does.
func formatDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
