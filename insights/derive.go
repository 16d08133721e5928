package insights

import (
	"context"
	"strconv"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// derivedSource is the Source of records insights emits.
const derivedSource = "insights"

// derive returns the derived records due for one profile at now. Their
// ids come from the profile, the product and the due date (or the start of
// the inactivity), so a second refit appends nothing new.
func (e *Engine) derive(ctx context.Context, h history, now time.Time, fit *fitted, scores map[string]float64) []behavior.Record {
	base, ok := derivedBase(h.profile, now)
	if !ok {
		return nil
	}
	var out []behavior.Record
	lead := e.opts.Config.ReplenishLead.D()
	last := map[string]time.Time{}
	for _, o := range h.orders {
		for _, pid := range behavior.ProductIDs(o.Items) {
			if o.At.After(last[pid]) {
				last[pid] = o.At
			}
		}
	}
	for pid, at := range last {
		ri, ok := fit.replenish[pid]
		if !ok {
			continue
		}
		due := ri.ReorderDate(at)
		// Due from lead before the date until lead after it: a refit that
		// ran a little late still reminds, a stale one does not.
		if now.Before(due.Add(-lead)) || now.After(due.Add(lead)) {
			continue
		}
		r := base
		r.Kind = behavior.ReplenishmentDue
		r.ID = behavior.DeriveID(derivedSource, string(r.Kind), h.profile.ID, pid, due.UTC().Format("2006-01-02"))
		item := behavior.Item{ProductID: pid, Quantity: 1}
		if p, err := e.store.Product(ctx, pid); err == nil {
			item.Title, item.URL, item.ImageURL, item.Price, item.Category = p.Title, p.URL, p.ImageURL, p.Price, p.Category
			r.Currency = p.Currency
		}
		r.Items = []behavior.Item{item}
		r.Attrs = map[string]any{"due_at": due.UTC().Format(time.RFC3339), "median_days": ri.Median.Hours() / 24, "last_bought_at": at.UTC().Format(time.RFC3339)}
		out = append(out, r)
	}
	if !h.buyer {
		return out
	}
	lastActive := lastActivity(h.records)
	pa, hasPA := scores[ScorePAlive]
	silent := now.Sub(lastActive) >= e.opts.Config.InactiveAfter.D()
	if silent || (hasPA && pa < e.opts.Config.InactivePAlive) {
		r := base
		r.Kind = behavior.BecameInactive
		// One per episode of inactivity: the id is tied to the last
		// activity, so coming back and drifting away again emits anew.
		r.ID = behavior.DeriveID(derivedSource, string(r.Kind), h.profile.ID, strconv.FormatInt(lastActive.Unix(), 10))
		r.Attrs = map[string]any{"last_active_at": lastActive.UTC().Format(time.RFC3339)}
		if hasPA {
			r.Attrs["p_alive"] = pa
		}
		out = append(out, r)
	}
	return out
}

// derivedBase is a record addressed to the profile through an identity
// that needs no namespace (email, else anonymous id).
func derivedBase(p storage.Profile, now time.Time) (behavior.Record, bool) {
	r := behavior.Record{Source: derivedSource, At: now}
	switch {
	case p.Email != "":
		r.Email = p.Email
	default:
		for _, id := range p.Identities {
			switch id.Type {
			case behavior.IdentEmail:
				r.Email = id.Value
			case behavior.IdentAnonymous:
				r.AnonymousID = id.Value
			}
			if r.Email != "" {
				break
			}
		}
	}
	return r, r.Email != "" || r.AnonymousID != ""
}

// lastActivity is the time of the profile's last own action: an order,
// a visit, a cart, an email click or a person's open.
func lastActivity(recs []behavior.Record) time.Time {
	var last time.Time
	for _, r := range recs {
		active := false
		switch r.Kind {
		case behavior.OrderPlaced, behavior.OrderPaid, behavior.PageViewed, behavior.ProductViewed,
			behavior.CollectionViewed, behavior.Searched, behavior.CartUpdated, behavior.CheckoutStarted,
			behavior.EmailClicked:
			active = true
		case behavior.EmailOpened:
			active = r.Ref(behavior.RefMachineOpen) != "true"
		}
		if active && r.At.After(last) {
			last = r.At
		}
	}
	return last
}
