package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/storage"
)

// TestRefitAtStartOnlyWhenStale starts the refit loop the way Serve does
// over a store whose saved fit is fresh (an hour old: restored, no refit)
// and over one whose saved fit is older than refit_every (refit at once).
func TestRefitAtStartOnlyWhenStale(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		age    time.Duration
		refits bool
	}{
		{"fresh", time.Hour, false},
		{"stale", 25 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := exampleConfig(t)
			cfg.Insights.RefitEvery = config.Duration(24 * time.Hour)
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx := context.Background()
			clk := clock.NewFake(now.Add(-tc.age - time.Hour))
			// The first process: a history and a refit, saved.
			a, err := Open(ctx, cfg, Options{Clock: clk, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 30 {
				r := behavior.Record{ID: fmt.Sprint("o", i), Kind: behavior.OrderPlaced, Source: "test", Store: "main",
					At: clk.Now().Add(-time.Duration(i) * 24 * time.Hour), Email: fmt.Sprintf("c%d@example.com", i%10), Value: 1000, Currency: "USD",
					Items: []behavior.Item{{ProductID: fmt.Sprint("p", i%3), Price: 1000, Quantity: 1}}}
				if _, err := a.Store.Append(ctx, storage.Ingest{Records: []behavior.Record{r}}); err != nil {
					t.Fatal(err)
				}
			}
			fittedAt := now.Add(-tc.age)
			if _, err := a.Insights().Refit(ctx, fittedAt); err != nil {
				t.Fatal(err)
			}
			a.Close()

			// The restart.
			clk.Set(now)
			a, err = Open(ctx, cfg, Options{Clock: clk, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				a.runRefits(runCtx)
			}()
			want := fittedAt
			if tc.refits {
				want = now
			}
			deadline := time.Now().Add(10 * time.Second)
			for !a.Insights().Report().AsOf.Equal(want) {
				if time.Now().After(deadline) {
					stop()
					<-done
					t.Fatalf("report as of %v, want %v", a.Insights().Report().AsOf, want)
				}
				time.Sleep(5 * time.Millisecond)
			}
			// A fresh fit stays: no refit follows the restore.
			time.Sleep(200 * time.Millisecond)
			stop()
			<-done
			if got := a.Insights().Report().AsOf; !got.Equal(want) {
				t.Fatalf("report as of %v after the loop, want %v", got, want)
			}
			m, err := a.Store.InsightsModel(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !m.FittedAt.Equal(want) {
				t.Fatalf("saved fit as of %v, want %v", m.FittedAt, want)
			}
		})
	}
}
