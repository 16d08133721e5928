package backtest

import (
	"context"
	"fmt"
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

// BenchmarkBacktest replays 2,000 records (500 shoppers browsing,
// checking out and some buying) through the eight example rules; ns/op
// is per replay, so per record it is ns/op / 2000.
func BenchmarkBacktest(b *testing.B) {
	ctx := context.Background()
	src, err := storage.Open(filepath.Join(b.TempDir(), storage.FileName), storage.Options{Clock: clock.NewFake(t0.Add(60 * 24 * time.Hour)), NoSync: true})
	require.NoError(b, err)
	defer src.Close()
	var recs []behavior.Record
	for i := range 500 {
		email := fmt.Sprintf("s%d@example.com", i)
		at := t0.Add(time.Duration(i) * 7 * time.Minute)
		item := []behavior.Item{{ProductID: fmt.Sprint("p", i%40), Title: "Thing", Price: 5400, Quantity: 1}}
		recs = append(recs,
			behavior.Record{ID: fmt.Sprint("v1-", i), Kind: behavior.ProductViewed, Source: "t", At: at, Email: email, Items: item, Consent: &behavior.Consent{State: behavior.ConsentGranted}},
			behavior.Record{ID: fmt.Sprint("v2-", i), Kind: behavior.ProductViewed, Source: "t", At: at.Add(time.Minute), Email: email, Items: item},
			behavior.Record{ID: fmt.Sprint("c-", i), Kind: behavior.CheckoutStarted, Source: "t", At: at.Add(3 * time.Minute), Email: email, Value: 5400, Items: item},
		)
		if i%3 == 0 {
			recs = append(recs, behavior.Record{ID: fmt.Sprint("o-", i), Kind: behavior.OrderPlaced, Source: "t", At: at.Add(2 * time.Hour), Email: email, Value: 5400, Items: item})
		} else {
			recs = append(recs, behavior.Record{ID: fmt.Sprint("p-", i), Kind: behavior.PageViewed, Source: "t", At: at.Add(2 * time.Hour), Email: email})
		}
	}
	_, err = src.Append(ctx, storage.Ingest{Records: recs})
	require.NoError(b, err)
	files, err := filepath.Glob("../rules.d/*.yaml")
	require.NoError(b, err)
	var ruleFiles []string
	for _, f := range files {
		if filepath.Ext(f) == ".yaml" && !(len(f) > 10 && f[len(f)-10:] == "_test.yaml") {
			ruleFiles = append(ruleFiles, f)
		}
	}
	set, err := rules.Load(ruleFiles)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Run(ctx, src, set, Options{Until: t0.Add(30 * 24 * time.Hour), Policies: config.Policies{RequireConsent: true}, Dir: b.TempDir()})
		require.NoError(b, err)
		require.Equal(b, len(recs), rep.Records)
	}
}
