package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/importer"
	"github.com/nudge-email/nudge/server"
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
		// backfill marks an import this long after the fit, before the
		// restart (the audit's CDNOW import with the server stopped).
		backfill time.Duration
	}{
		{"fresh", time.Hour, false, 0},
		{"stale", 25 * time.Hour, true, 0},
		{"fresh but an import since", time.Hour, true, time.Minute},
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
			if tc.backfill > 0 {
				if err := a.Store.MarkBackfilled(ctx, fittedAt.Add(tc.backfill)); err != nil {
					t.Fatal(err)
				}
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

// TestRefitAfterImport: an import into a running server (which marks the
// store backfilled) gets the models refitted once it has been quiet for
// backfillQuiet, not at the next refit_every.
func TestRefitAfterImport(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cfg := exampleConfig(t)
	cfg.Insights.RefitEvery = config.Duration(24 * time.Hour)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	clk := clock.NewFake(now)
	a, err := Open(ctx, cfg, Options{Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.backfillQuiet = 40 * time.Millisecond
	if _, err := a.Insights().Refit(ctx, now); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.runRefits(runCtx)
	}()
	defer func() { stop(); <-done }()

	// A fresh fit: nothing happens for a while.
	time.Sleep(150 * time.Millisecond)
	if got := a.Insights().Report().AsOf; !got.Equal(now) {
		t.Fatalf("refitted without an import: as of %v", got)
	}
	// An import a minute later, through the API hook as the CLI sends it.
	clk.Set(now.Add(time.Minute))
	body := ""
	for i := range 20 {
		body += fmt.Sprintf(`{"kind":"order_placed","at":"1997-0%d-1%dT10:00:00Z","email":"h%d@example.com","value":1500,"currency":"USD"}`+"\n", i%9+1, i%10, i%7)
	}
	rep, err := a.parts.hooks.Import(ctx, server.ImportRequest{File: "history.ndjson", FirstLine: 1}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.(importer.Report); r.Imported != 20 {
		t.Fatalf("imported %+v", r)
	}
	clk.Set(now.Add(2 * time.Minute)) // quiet since
	want := now.Add(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for !a.Insights().Report().AsOf.Equal(want) {
		if time.Now().After(deadline) {
			t.Fatalf("no refit after the import: as of %v, want %v", a.Insights().Report().AsOf, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rep := a.Insights().Report(); rep.Records < 20 {
		t.Errorf("the refit saw %d records", rep.Records)
	}
}
