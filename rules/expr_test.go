package rules

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
)

type fakeLookup struct {
	views  map[string][]time.Time
	events map[behavior.Kind][]time.Time
}

func (f fakeLookup) Views(productID string, since time.Time) int {
	n := 0
	for _, at := range f.views[productID] {
		if !at.Before(since) {
			n++
		}
	}
	return n
}

func (f fakeLookup) Events(kind behavior.Kind, since time.Time) int {
	n := 0
	for _, at := range f.events[kind] {
		if !at.Before(since) {
			n++
		}
	}
	return n
}

func (f fakeLookup) Recommend(profileID string, n int) []Product {
	return []Product{{ProductID: "p9", Title: "Socks", Price: 900}}[:min(n, 1)]
}

func TestExprEval(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := behavior.Record{
		ID: "r1", Kind: behavior.ProductViewed, At: now, Value: 5400, Currency: "USD", Seconds: 42,
		Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400, Quantity: 1}},
	}
	prof := Profile{
		ID: "pr1", Email: "ann@example.com", OrdersCount: 2, TotalSpent: 12000,
		Counts:   map[string]int{"product_viewed": 3},
		LastAt:   map[string]time.Time{"order_placed": now.Add(-100 * 24 * time.Hour)},
		LastSeen: now.Add(-91 * 24 * time.Hour),
		Scores:   map[string]float64{"churn_risk": 0.8},
	}
	look := fakeLookup{
		views:  map[string][]time.Time{"p1": {now.Add(-2 * time.Hour), now, now.Add(-48 * time.Hour)}},
		events: map[behavior.Kind][]time.Time{behavior.CartUpdated: {now.Add(-72 * time.Hour)}},
	}
	env := NewEnv(EventOf(rec), EventOf(rec), prof, Store{ID: "main", Currency: "USD"}, now, look)
	tests := []struct {
		src  string
		want bool
	}{
		{`event.value >= 2000`, true},
		{`event.items[0].product_id == "p1" && event.items[0].price == 5400`, true},
		{`views(event.items[0].product_id, "24h") >= 2 || event.seconds >= 30`, true},
		{`views("p1", "1h") >= 2`, false},
		{`events("cart_updated", "24h") == 0`, true},
		{`events("cart_updated", "1w") == 0`, false},
		{`profile.last_seen < ago("90d")`, true},
		{`now - profile.last_at["order_placed"] > duration("15w")`, false},
		{`profile.last_at["never"].IsZero() && profile.counts["never"] == 0`, true},
		{`profile.scores["churn_risk"] > 0.5`, true},
		{`len(recommend(profile, 4)) == 1 && recommend(profile, 4)[0].title == "Socks"`, true},
		{`event.refs["missing"] == ""`, true},
		{`store.currency == event.currency`, true},
	}
	for _, tc := range tests {
		e, err := Compile(tc.src, true)
		require.NoError(t, err, tc.src)
		got, err := e.Bool(&env)
		require.NoError(t, err, tc.src)
		require.Equal(t, tc.want, got, tc.src)
	}

	// A run-time failure is an error naming the expression, not a silent false.
	e, err := Compile(`event.items[3].price > 0`, true)
	require.NoError(t, err)
	_, err = e.Bool(&env)
	require.ErrorContains(t, err, "event.items[3].price > 0")

	e, err = Compile(`ago(event.query) < now`, true)
	require.NoError(t, err)
	_, err = e.Bool(&env)
	require.ErrorContains(t, err, "empty duration")

	// A nil where matches.
	var none *Expr
	ok, err := none.Bool(&env)
	require.NoError(t, err)
	require.True(t, ok)

	v, err := mustCompile(t, `event.value / 100`).Eval(&env)
	require.NoError(t, err)
	require.Equal(t, 54.0, v) // expr divides in floats
}

func mustCompile(t *testing.T, src string) *Expr {
	t.Helper()
	e, err := Compile(src, false)
	require.NoError(t, err)
	return e
}
