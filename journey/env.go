package journey

import (
	"context"
	"slices"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/storage"
)

// profileEnv converts a profile for expressions.
func profileEnv(p storage.Profile) rules.Profile {
	out := rules.Profile{
		ID: p.ID, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName,
		Country: p.Country, Locale: p.Locale, Timezone: p.Zone(), Consent: p.Consent.State,
		OrdersCount: p.OrdersCount, TotalSpent: int(p.TotalSpent), Currency: p.Currency,
		FirstSeen: p.FirstSeen, LastSeen: p.LastSeen, Segment: p.Segment,
		Counts: make(map[string]int, len(p.Counts)), LastAt: make(map[string]time.Time, len(p.LastAt)),
		Scores: p.Scores,
	}
	for k, v := range p.Counts {
		out.Counts[string(k)] = v
	}
	for k, v := range p.LastAt {
		out.LastAt[string(k)] = v
	}
	if out.Scores == nil {
		out.Scores = map[string]float64{}
	}
	return out
}

// productEnv converts a catalog product for expressions.
func productEnv(p storage.Product) rules.Product {
	return rules.Product{
		ProductID: p.ProductID, Title: p.Title, URL: p.URL, ImageURL: p.ImageURL,
		Price: int(p.Price), Currency: p.Currency, Category: p.Category,
	}
}

// lookup answers the store-backed expression helpers for one profile.
// Store errors count as "nothing found" and are logged: an expression
// cannot return an error from inside a helper without failing the rule,
// and a flaky read should not end a journey.
type lookup struct {
	ctx       context.Context
	e         *Engine
	profileID string
}

func (l *lookup) records(kind behavior.Kind, since time.Time) []behavior.Record {
	if l.profileID == "" {
		return nil
	}
	recs, err := l.e.store.RecordsByProfile(l.ctx, l.profileID, storage.RecordQuery{Since: since, Kinds: []behavior.Kind{kind}})
	if err != nil {
		l.e.opts.Logger.Warn("rule helper read failed", "profile_id", l.profileID, "kind", kind, "error", err)
		return nil
	}
	return recs
}

// Views implements rules.Lookup.
func (l *lookup) Views(productID string, since time.Time) int {
	n := 0
	for _, r := range l.records(behavior.ProductViewed, since) {
		if slices.ContainsFunc(r.Items, func(it behavior.Item) bool { return it.ProductID == productID }) {
			n++
		}
	}
	return n
}

// Events implements rules.Lookup.
func (l *lookup) Events(kind behavior.Kind, since time.Time) int {
	return len(l.records(kind, since))
}

// Recommend implements rules.Lookup.
func (l *lookup) Recommend(profileID string, n int) []rules.Product {
	if l.e.opts.Recommender == nil || profileID == "" {
		return nil
	}
	ps, err := l.e.opts.Recommender.Recommend(l.ctx, profileID, n)
	if err != nil {
		l.e.opts.Logger.Warn("recommend failed", "profile_id", profileID, "error", err)
		return nil
	}
	out := make([]rules.Product, 0, len(ps))
	for _, p := range ps {
		out = append(out, productEnv(p))
	}
	return out
}

// newEnv builds the expression environment.
func (e *Engine) newEnv(ctx context.Context, event, trigger *behavior.Record, p storage.Profile, now time.Time, step int) rules.Env {
	ev := rules.EventOf(*event)
	tr := ev
	if trigger != event && trigger.ID != event.ID {
		tr = rules.EventOf(*trigger)
	}
	env := rules.NewEnv(ev, tr, profileEnv(p), e.storeEnv(event.Store), now, &lookup{ctx: ctx, e: e, profileID: p.ID})
	env.Step = step
	return env
}

// storeEnv finds the record's store in the configuration; records without
// one (Stripe, tracking) get the first configured store.
func (e *Engine) storeEnv(id string) rules.Store {
	for _, s := range e.opts.Stores {
		if s.ID == id {
			return rules.StoreOf(s)
		}
	}
	if len(e.opts.Stores) > 0 {
		return rules.StoreOf(e.opts.Stores[0])
	}
	return rules.Store{ID: id}
}
