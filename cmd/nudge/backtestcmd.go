package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/backtest"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/storage"
)

// openReadable opens the store for a read-mostly command: directly when no
// server runs, else a fresh snapshot fetched through the admin API (bbolt
// lets one process hold the file). The returned func cleans up.
func openReadable(ctx context.Context, cfg *config.Config) (*storage.DB, func(), error) {
	a := newAdminClient(cfg)
	if !a.reachable(ctx) {
		db, err := openDirect(cfg)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { db.Close() }, nil
	}
	dir, err := os.MkdirTemp("", "nudge-snapshot-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	resp, err := a.do(ctx, http.MethodGet, "/api/v1/backup", nil)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("snapshot from the running server: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, storage.FileName))
	if err == nil {
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	resp.Body.Close()
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	db, err := storage.Open(filepath.Join(dir, storage.FileName), storage.Options{})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, func() { db.Close(); cleanup() }, nil
}

func cmdBacktest(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "backtest", "[-c FILE] [--since DUR] [--rule ID] [--json]")
	cfgPath := fs.String("c", "", "config file")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
	since := fs.String("since", "30d", "how far back to replay (e.g. 30d, 12w)")
	rule := fs.String("rule", "", "only this rule")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	d, err := config.ParseDuration(*since)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge backtest: --since:", err)
		return 2
	}
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge backtest:", err)
		return 1
	}
	files, err := cfg.RuleFiles()
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge backtest:", err)
		return 1
	}
	set, err := rules.Load(files)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return 1
	}
	if *rule != "" && set.Rule(*rule) == nil {
		fmt.Fprintf(e.stderr, "nudge backtest: no rule %q\n", *rule)
		return 1
	}
	db, done, err := openReadable(ctx, cfg)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge backtest:", err)
		return 1
	}
	defer done()
	rep, err := backtest.Run(ctx, db, set, backtest.Options{
		Since: time.Now().Add(-d), Rule: *rule, Policies: cfg.Policies, Stores: cfg.Stores, Timezone: loc,
	})
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge backtest:", err)
		return 1
	}
	if *asJSON {
		return exitErr(e, writeJSON(e.stdout, rep))
	}
	return exitErr(e, rep.WriteText(e.stdout))
}

func cmdPreview(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "preview", "RULE --email E [--step N] [--data-dir DIR] [-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
	email := fs.String("email", "", "the customer to render for (required)")
	step := fs.Int("step", 1, "step number, from 1")
	asJSON := fs.Bool("json", false, "print the message as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || *email == "" {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	db, done, err := openReadable(ctx, cfg)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge preview:", err)
		return 1
	}
	defer done()
	p, err := db.ProfileByEmail(ctx, *email)
	if errors.Is(err, storage.ErrNotFound) {
		fmt.Fprintf(e.stderr, "nudge preview: no profile for %s\n", *email)
		return 1
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge preview:", err)
		return 1
	}
	msg, err := app.Preview(ctx, cfg, db, pos[0], p, *step)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge preview:", err)
		return 1
	}
	if *asJSON {
		return exitErr(e, writeJSON(e.stdout, msg))
	}
	w := e.stdout
	fmt.Fprintf(w, "To:       %s\nFrom:     %s <%s>\n", msg.To.Email, msg.From.Name, msg.From.Email)
	if msg.TemplateID != "" {
		fmt.Fprintf(w, "Template: %s (rendered by the provider)\nData:\n", msg.TemplateID)
		return exitErr(e, writeJSON(w, msg.TemplateData))
	}
	fmt.Fprintf(w, "Subject:  %s\n", msg.Subject)
	for k, v := range msg.Headers {
		fmt.Fprintf(w, "%s: %s\n", k, v)
	}
	if msg.Text != "" {
		fmt.Fprintf(w, "\n--- text ---\n%s\n", msg.Text)
	}
	if msg.HTML != "" {
		fmt.Fprintf(w, "\n--- html ---\n%s\n", msg.HTML)
	}
	return 0
}
