package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/rules"
)

func newLogger(e *env, level string, jsonOut bool) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if jsonOut {
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
}

func cmdServe(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "serve", "[-c FILE] [--listen ADDR] [--data-dir DIR]")
	cfgPath := fs.String("c", "", "config file (default ./nudge.yaml, then ./config.example.yaml)")
	listen := fs.String("listen", "", "listen address (overrides listen)")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	level := fs.String("log-level", "info", "debug | info | warn | error")
	jsonLogs := fs.Bool("log-json", false, "log as JSON lines")
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	log, err := newLogger(e, *level, *jsonLogs)
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge serve:", err)
		return 2
	}
	cfg, err := loadConfig(e, *cfgPath)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if cfg.Admin.Token == "change-me" {
		log.Warn("admin.token is the placeholder 'change-me': set NUDGE_ADMIN_TOKEN before exposing nudge")
	}
	a, err := app.Open(ctx, cfg, app.Options{Logger: log, Version: version})
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge serve:", err)
		return 1
	}
	runErr := a.Serve(ctx, cfg.Listen)
	if err := a.Close(); err != nil {
		log.Error("closing the store", "error", err)
		return 1
	}
	if runErr != nil {
		fmt.Fprintln(e.stderr, "nudge serve:", runErr)
		return 1
	}
	log.Info("nudge stopped cleanly")
	return 0
}

func cmdCheck(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "check", "[-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	cfg, err := loadConfig(e, *cfgPath)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	files, err := cfg.RuleFiles()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return 1
	}
	set, err := rules.Load(files)
	if err != nil {
		var list rules.Errors
		if errors.As(err, &list) {
			for _, item := range list {
				fmt.Fprintln(e.stderr, item.Error())
			}
		} else {
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(e.stderr, line)
			}
		}
		return 1
	}
	if strings.TrimSpace(cfg.Tracking.WriteKey) == "" {
		fmt.Fprintln(e.stderr, "note: tracking.write_key is not set: serve runs with the tracking API (/v1/*, /t.js) off")
	}
	fmt.Fprintf(e.stdout, "ok: %d rules\n", set.Len())
	return 0
}
