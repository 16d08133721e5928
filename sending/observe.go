package sending

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// Keys of storage.Send.Meta written here.
const (
	metaSeen        = "seen"            // ids of engagement records counted, comma-separated
	metaFirstClick  = "first_click_at"  // RFC 3339
	metaLastClick   = "last_click_at"   //
	metaFirstOpen   = "first_open_at"   // human opens only
	metaLastOpen    = "last_open_at"    //
	metaOrders      = "orders"          // ids of orders attributed, comma-separated
	metaRevenue     = "revenue"         // minor units, sum of attributed orders
	metaConverted   = "converted_order" // the latest attributed order
	metaConvertedAt = "converted_at"
	// metaExposedOrders lists orders that followed a sent message within
	// the window, clicked or not: the sent arm of a holdout comparison,
	// measured the same way as the held arm (intention to treat).
	metaExposedOrders = "exposed_orders"
	// keepSeen bounds metaSeen; replays come soon after a crash, so the
	// latest ids are the ones that matter.
	keepSeen = 200
)

// Engagement keys of storage.Send.Engagement besides the record kinds'
// names without "email_".
const (
	// EngagementMachineOpened counts opens by privacy proxies (Apple Mail
	// Privacy Protection and the like), which say nothing about a person.
	EngagementMachineOpened = "machine_opened"
)

// Observe links engagement records to their send and attributes orders.
// It is idempotent: a replayed record changes nothing.
func (d *Dispatcher) Observe(ctx context.Context, r behavior.Record, p storage.Profile) error {
	switch {
	case r.Kind.Engagement():
		return d.engage(ctx, r)
	case r.Kind == behavior.OrderPlaced:
		return d.attribute(ctx, r, p)
	}
	return nil
}

// sendOf finds the send an engagement record is about: by our id in the
// custom args / user variables, else by the provider's message id.
func (d *Dispatcher) sendOf(ctx context.Context, r behavior.Record) (string, error) {
	if id := r.Ref(behavior.RefSendID); id != "" {
		if _, err := d.store.Send(ctx, id); err == nil {
			return id, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
	}
	if mid := r.Ref(behavior.RefMessageID); mid != "" {
		s, err := d.store.SendByProviderMessageID(ctx, mid)
		if err == nil {
			return s.ID, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
	}
	return "", nil
}

func engagementKey(r behavior.Record) string {
	if r.Kind == behavior.EmailOpened && r.Ref(behavior.RefMachineOpen) == "true" {
		return EngagementMachineOpened
	}
	return strings.TrimPrefix(string(r.Kind), "email_")
}

func (d *Dispatcher) engage(ctx context.Context, r behavior.Record) error {
	id, err := d.sendOf(ctx, r)
	if err != nil {
		return fmt.Errorf("sending: observe %s: %w", r.ID, err)
	}
	if id == "" {
		return nil // not one of ours (or forgotten)
	}
	_, err = d.modify(ctx, id, func(s *storage.Send) (bool, error) {
		if listHas(s.Meta[metaSeen], r.ID) {
			return false, nil
		}
		if s.Meta == nil {
			s.Meta = map[string]string{}
		}
		s.Meta[metaSeen] = listAdd(s.Meta[metaSeen], r.ID, keepSeen)
		if s.Engagement == nil {
			s.Engagement = map[string]int{}
		}
		key := engagementKey(r)
		s.Engagement[key]++
		switch key {
		case "clicked":
			touch(s.Meta, metaFirstClick, metaLastClick, r.At)
		case "opened":
			touch(s.Meta, metaFirstOpen, metaLastOpen, r.At)
		}
		return true, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sending: observe %s on send %s: %w", r.Kind, id, err)
	}
	return nil
}

func touch(meta map[string]string, firstKey, lastKey string, at time.Time) {
	if f, ok := metaTime(meta, firstKey); !ok || at.Before(f) {
		meta[firstKey] = at.UTC().Format(time.RFC3339Nano)
	}
	if l, ok := metaTime(meta, lastKey); !ok || at.After(l) {
		meta[lastKey] = at.UTC().Format(time.RFC3339Nano)
	}
}

func metaTime(meta map[string]string, key string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, meta[key])
	return t, err == nil
}

// touchBefore is the latest touch of kind (first/last keys) at or before
// at. Only the first and last are kept: when the last is after the order,
// the first stands in for the touches between.
func touchBefore(meta map[string]string, firstKey, lastKey string, at time.Time) (time.Time, bool) {
	if l, ok := metaTime(meta, lastKey); ok && !l.After(at) {
		return l, true
	}
	if f, ok := metaTime(meta, firstKey); ok && !f.After(at) {
		return f, true
	}
	return time.Time{}, false
}

// attribute credits an order to the rule of the profile's send touched
// last (clicked, or opened by a person when policies.attribute_opens)
// within the attribution window before it. Independently, the latest held
// send within the window before the order counts a holdout conversion, so
// that conversions with and without the email can be compared.
func (d *Dispatcher) attribute(ctx context.Context, r behavior.Record, p storage.Profile) error {
	if p.ID == "" {
		return nil
	}
	sends, err := d.store.SendsByProfile(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("sending: attribute %s: %w", r.ID, err)
	}
	window := d.opts.Policies.AttributionWindow.D()
	var touched, held, exposed storage.Send
	var touchedAt, heldAt, exposedAt time.Time
	for _, s := range sends {
		if listHas(s.Meta[metaOrders], r.ID) {
			return nil // replay
		}
		var at time.Time
		switch s.Status {
		case storage.SendSent, storage.SendUnknown:
			if sentAt := sendTime(s); !sentAt.After(r.At) && r.At.Sub(sentAt) <= window && (exposed.ID == "" || sentAt.After(exposedAt)) {
				exposed, exposedAt = s, sentAt
			}
			c, okc := touchBefore(s.Meta, metaFirstClick, metaLastClick, r.At)
			if d.opts.Policies.AttributeOpens {
				if o, oko := touchBefore(s.Meta, metaFirstOpen, metaLastOpen, r.At); oko && (!okc || o.After(c)) {
					c, okc = o, true
				}
			}
			if !okc || r.At.Sub(c) > window {
				continue
			}
			at = c
			if at.After(touchedAt) || touched.ID == "" {
				touched, touchedAt = s, at
			}
		case storage.SendHeld:
			at = s.CreatedAt
			if at.After(r.At) || r.At.Sub(at) > window {
				continue
			}
			if at.After(heldAt) || held.ID == "" {
				held, heldAt = s, at
			}
		}
	}
	if exposed.ID != "" {
		_, err := d.modify(ctx, exposed.ID, func(s *storage.Send) (bool, error) {
			if listHas(s.Meta[metaExposedOrders], r.ID) {
				return false, nil
			}
			if s.Meta == nil {
				s.Meta = map[string]string{}
			}
			s.Meta[metaExposedOrders] = listAdd(s.Meta[metaExposedOrders], r.ID, 0)
			return true, nil
		})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("sending: exposure of %s on send %s: %w", r.ID, exposed.ID, err)
		}
	}
	for _, s := range []storage.Send{touched, held} {
		if s.ID == "" {
			continue
		}
		_, err := d.modify(ctx, s.ID, func(s *storage.Send) (bool, error) {
			if listHas(s.Meta[metaOrders], r.ID) {
				return false, nil
			}
			if s.Meta == nil {
				s.Meta = map[string]string{}
			}
			s.Meta[metaOrders] = listAdd(s.Meta[metaOrders], r.ID, 0)
			rev, _ := strconv.ParseInt(s.Meta[metaRevenue], 10, 64)
			s.Meta[metaRevenue] = strconv.FormatInt(rev+r.Value, 10)
			s.Meta[metaConverted] = r.ID
			s.Meta[metaConvertedAt] = r.At.UTC().Format(time.RFC3339Nano)
			return true, nil
		})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("sending: attribute %s to send %s: %w", r.ID, s.ID, err)
		}
	}
	return nil
}

// RuleStats are one rule's outbox counts, for GET /api/v1/rules.
type RuleStats struct {
	Sent         int `json:"sent"`
	Pending      int `json:"pending"` // pending, sending or retrying
	Dead         int `json:"dead"`
	Unknown      int `json:"unknown"`
	Skipped      int `json:"skipped"`
	Delivered    int `json:"delivered"` // sends with at least one such event
	Opened       int `json:"opened"`    // human opens only
	Clicked      int `json:"clicked"`
	Bounced      int `json:"bounced"`
	Unsubscribed int `json:"unsubscribed"`
	// Converted counts orders attributed to the rule's sends; Revenue is
	// their value in minor units.
	Converted int   `json:"converted"`
	Revenue   int64 `json:"revenue"`
	// Held counts holdout sends and HeldConverted the orders that followed
	// them within the window: the baseline for lift.
	Held          int `json:"held"`
	HeldConverted int `json:"held_converted"`
	// SentConverted counts orders that followed a sent message within the
	// window whether or not it was clicked: compared with HeldConverted it
	// measures lift without crediting the email for clicks alone.
	SentConverted int `json:"sent_converted"`
}

// sendTime is when a send went out, or was created when that is unknown.
func sendTime(s storage.Send) time.Time {
	if !s.SentAt.IsZero() {
		return s.SentAt
	}
	return s.CreatedAt
}

// RuleStats aggregates the outbox per rule.
func (d *Dispatcher) RuleStats(ctx context.Context) (map[string]RuleStats, error) {
	sends, err := d.store.ListSends(ctx, "", 0)
	if err != nil {
		return nil, fmt.Errorf("sending: rule stats: %w", err)
	}
	out := map[string]RuleStats{}
	for _, s := range sends {
		st := out[s.Rule]
		orders := listLen(s.Meta[metaOrders])
		rev, _ := strconv.ParseInt(s.Meta[metaRevenue], 10, 64)
		switch s.Status {
		case storage.SendHeld:
			st.Held++
			st.HeldConverted += orders
			out[s.Rule] = st
			continue
		case storage.SendSent:
			st.Sent++
			st.SentConverted += listLen(s.Meta[metaExposedOrders])
		case storage.SendPending, storage.SendSending, storage.SendRetrying:
			st.Pending++
		case storage.SendDead:
			st.Dead++
		case storage.SendUnknown:
			st.Unknown++
		case storage.SendSkipped:
			st.Skipped++
		}
		if s.Engagement["delivered"] > 0 {
			st.Delivered++
		}
		if s.Engagement["opened"] > 0 {
			st.Opened++
		}
		if s.Engagement["clicked"] > 0 {
			st.Clicked++
		}
		if s.Engagement["bounced"] > 0 {
			st.Bounced++
		}
		if s.Engagement["unsubscribed"] > 0 {
			st.Unsubscribed++
		}
		st.Converted += orders
		st.Revenue += rev
		out[s.Rule] = st
	}
	return out, nil
}

func listHas(list, id string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == id && x != "" {
			return true
		}
	}
	return false
}

// listAdd appends id, keeping at most keep entries (0 = all).
func listAdd(list, id string, keep int) string {
	var xs []string
	if list != "" {
		xs = strings.Split(list, ",")
	}
	xs = append(xs, id)
	if keep > 0 && len(xs) > keep {
		xs = xs[len(xs)-keep:]
	}
	return strings.Join(xs, ",")
}

func listLen(list string) int {
	if list == "" {
		return 0
	}
	return strings.Count(list, ",") + 1
}
