package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nudge-email/nudge/insights"
)

func cmdInsights(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "insights", "[--as-of DATE] [--json] [--data-dir DIR] [-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
	asOf := fs.String("as-of", "", "fit on the history before this date (YYYY-MM-DD or RFC 3339; default now)")
	asJSON := fs.Bool("json", false, "print JSON (the same as GET /api/v1/insights)")
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	at := time.Now().UTC()
	if *asOf != "" {
		var err error
		if at, err = time.Parse("2006-01-02", *asOf); err != nil {
			if at, err = time.Parse(time.RFC3339, *asOf); err != nil {
				fmt.Fprintf(e.stderr, "nudge insights: --as-of %q: want YYYY-MM-DD or RFC 3339\n", *asOf)
				return 2
			}
		}
	}
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge insights:", err)
		return 1
	}
	serverUp := newAdminClient(cfg).reachable(ctx)
	db, done, err := openReadable(ctx, cfg)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge insights:", err)
		return 1
	}
	defer done()
	eng := insights.New(db, insights.Options{Config: cfg.Insights, Location: loc})
	var rep insights.Report
	if *asOf == "" && !serverUp {
		// Now, on the live data dir: fit and also store the scores, as the
		// server's daily refit would.
		rep, err = eng.Refit(ctx, at)
	} else {
		rep, err = eng.Analyze(ctx, at)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge insights:", err)
		return 1
	}
	if *asJSON {
		return exitErr(e, writeJSON(e.stdout, rep))
	}
	return exitErr(e, rep.WriteText(e.stdout))
}
