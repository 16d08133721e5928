package journey_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/rules/ruletest"
)

// fiftyRules are 50 rules triggered by product_viewed with a mix of the
// where clauses real rules use; none matches the benchmark's record, the
// common case, so each evaluation runs every where clause and records a
// decision per rule.
func fiftyRules(tb testing.TB) *rules.Set {
	wheres := []string{
		`event.value >= 100000`,
		`len(event.items) > 0 && event.items[0].price > 100000`,
		`profile.orders_count > 10 && profile.total_spent > 50000`,
		`event.seconds >= 300`,
		`profile.last_seen < ago("90d")`,
		`profile.counts["order_placed"] > 5`,
		`profile.scores["churn_risk"] > 0.9`,
		`event.url contains "/sale/" && profile.segment == "vip"`,
		`len(event.items) > 0 && views(event.items[0].product_id, "24h") >= 5`,
		`events("cart_updated", "24h") > 3`,
	}
	var docs []string
	for i := range 50 {
		docs = append(docs, fmt.Sprintf("id: rule-%02d\ntrigger:\n  event: product_viewed\n  where: '%s'\nexit: [{ event: order_placed }]\nsteps: [{ wait: 1h, send: { template: t } }]\n",
			i, strings.ReplaceAll(wheres[i%len(wheres)], "'", "''")))
	}
	return ruleSet(tb, docs...)
}

// BenchmarkEvaluate50Rules is the engine's work for one stored record
// against 50 rules: read record, profile and journeys, run 50 where
// clauses (two of them query the store) and record 50 decisions.
//
// "commit=now" commits each write at once, so the figure is the work
// itself; "commit=group" uses the store's production group commit, whose
// 2 ms window a lone writer waits out (concurrent evaluations share it).
func BenchmarkEvaluate50Rules(b *testing.B) {
	for _, tc := range []struct {
		name  string
		batch int
	}{{"commit=now", 1}, {"commit=group", -1}} {
		b.Run(tc.name, func(b *testing.B) { benchEvaluate(b, tc.batch) })
	}
}

func benchEvaluate(b *testing.B, batch int) {
	ctx := context.Background()
	h, err := ruletest.NewHarness(ruletest.HarnessOptions{Dir: b.TempDir(), Rules: fiftyRules(b), Policies: config.Policies{RequireConsent: true}, MaxBatchSize: batch})
	require.NoError(b, err)
	b.Cleanup(func() { _ = h.Close() })
	rec := behavior.Record{
		ID: "v1", Kind: behavior.ProductViewed, Source: "test", Store: "main", At: t0, Email: "ann@example.com",
		Seconds: 12, URL: "https://shop.example.com/products/p1",
		Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400}},
	}
	require.NoError(b, h.Ingest(ctx, rec))
	_, err = h.RunUntil(ctx, t0)
	require.NoError(b, err)
	pid := profileID(b, h, "ann@example.com")
	ds, err := h.Store.Decisions(ctx, pid)
	require.NoError(b, err)
	require.Len(b, ds, 50, "every rule decided")

	b.ReportAllocs()
	for b.Loop() {
		if err := h.Engine.Evaluate(ctx, "v1", pid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatch50Rules is the pure matching cost: 50 compiled trigger
// where clauses against one environment, without the store.
func BenchmarkMatch50Rules(b *testing.B) {
	set := fiftyRules(b)
	rec := behavior.Record{
		ID: "v1", Kind: behavior.ProductViewed, At: t0, Seconds: 12, URL: "https://shop.example.com/products/p1",
		Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400}},
	}
	ev := rules.EventOf(rec)
	p := rules.Profile{Counts: map[string]int{}, LastAt: map[string]time.Time{}, Scores: map[string]float64{}, LastSeen: t0}
	env := rules.NewEnv(ev, ev, p, rules.Store{ID: "main"}, t0, nil)
	rs := set.Triggered(behavior.ProductViewed)
	require.Len(b, rs, 50)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range rs {
			ok, err := r.Trigger.Where.Bool(&env)
			if err != nil || ok {
				b.Fatal(ok, err)
			}
		}
	}
}
