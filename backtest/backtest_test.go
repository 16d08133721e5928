package backtest

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/storage"
)

var t0 = time.Date(2026, 2, 2, 10, 0, 0, 0, time.UTC)

func TestBacktestCartAbandonment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{Clock: clock.NewFake(t0.Add(30 * 24 * time.Hour))})
	require.NoError(t, err)
	defer src.Close()

	granted := &behavior.Consent{State: behavior.ConsentGranted}
	rec := func(id string, k behavior.Kind, at time.Duration, email string, value int64) behavior.Record {
		return behavior.Record{ID: id, Kind: k, Source: "test", Store: "main", At: t0.Add(at), Email: email, Value: value, Currency: "USD"}
	}
	history := []behavior.Record{
		// Before --since: only builds the profile (a returning customer).
		rec("old", behavior.OrderPlaced, -10*24*time.Hour, "gil@example.com", 3000),
		rec("ann1", behavior.CheckoutStarted, 0, "ann@example.com", 5400),
		rec("bo1", behavior.CheckoutStarted, time.Minute, "bo@example.com", 5400),
		rec("bo2", behavior.OrderPlaced, 30*time.Minute, "bo@example.com", 5400),
		rec("cy1", behavior.CheckoutStarted, 2*time.Minute, "cy@example.com", 5400),
		rec("dan1", behavior.CheckoutStarted, 3*time.Minute, "dan@example.com", 5400),
		rec("dan2", behavior.CheckoutStarted, 2*24*time.Hour, "dan@example.com", 5400),
		rec("ed1", behavior.CheckoutStarted, 4*time.Minute, "ed@example.com", 1500),
		rec("gil1", behavior.CheckoutStarted, 5*time.Minute, "gil@example.com", 5400),
	}
	for i := range history {
		if history[i].Email != "cy@example.com" {
			history[i].Consent = granted
		}
	}
	_, err = src.Append(ctx, storage.Ingest{Records: history})
	require.NoError(t, err)

	set, err := rules.Load([]string{"../rules.d/cart-abandonment.yaml", "../rules.d/win-back.yaml"})
	require.NoError(t, err)
	rep, err := Run(ctx, src, set, Options{
		Since: t0.Add(-time.Hour), Until: t0.Add(10 * 24 * time.Hour),
		Policies: config.Policies{RequireConsent: true, FrequencyCap: config.FrequencyCap{Max: 1, Per: config.Duration(24 * time.Hour)}},
		Dir:      t.TempDir(),
	})
	require.NoError(t, err)
	require.Equal(t, len(history), rep.Records)
	require.Len(t, rep.Rules, 2)
	require.Equal(t, RuleReport{
		Rule:    "cart-abandonment",
		Matched: 7, Filtered: 1, Started: 5,
		// ann: both steps; dan: both; gil: step 1 only (returning
		// customer: step 2's where is false).
		Sends: []int{3, 2}, Held: []int{0, 0},
		StoppedByExit: 1, StoppedByWhere: 1, StoppedByLimit: 1, StoppedByConsent: 1,
		// Step 2 is due 23 h after step 1, inside the 1-per-24h cap.
		CapDeferred: 2,
		Completed:   2,
	}, rep.Rules[0])
	require.Equal(t, "win-back", rep.Rules[1].Rule)
	require.Zero(t, rep.Rules[1].Started)

	var out bytes.Buffer
	require.NoError(t, rep.WriteText(&out))
	// The header counts what the rules saw, apart from the history before
	// the window (the rules audit found the full count misleading).
	require.Equal(t, 9, rep.Records)
	require.Equal(t, 8, rep.InWindow)
	require.Contains(t, out.String(), "8 records from 2026-02-02T09:00:00Z to 2026-02-12T10:00:00Z went through the rules (nothing was sent); 1 before them were replayed as history only")
	require.Contains(t, out.String(), "cart-abandonment  7        5        0        3/2")

	// The source store is only read.
	js := 0
	require.NoError(t, src.ScanJourneys(ctx, "", func(storage.Journey) error { js++; return nil }))
	require.Zero(t, js)
	sends, err := src.ListSends(ctx, "", 0)
	require.NoError(t, err)
	require.Empty(t, sends)

	only, err := Run(ctx, src, set, Options{Rule: "win-back", Until: t0.Add(24 * time.Hour), Dir: t.TempDir()})
	require.NoError(t, err)
	require.Len(t, only.Rules, 1)
	_, err = Run(ctx, src, set, Options{Rule: "nope", Dir: t.TempDir()})
	require.ErrorContains(t, err, `no rule "nope"`)
}
