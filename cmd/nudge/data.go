package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/server"
	"github.com/nudge-email/nudge/storage"
)

// openDirect opens the data dir's store when no server holds it.
func openDirect(cfg *config.Config) (*storage.DB, error) {
	db, err := storage.OpenDir(cfg.DataDir, storage.Options{LockTimeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w (is a nudge server running with another admin token or address?)", err)
	}
	return db, nil
}

// personCommand runs profile/export/forget: through the admin API when a
// server is reachable, else on the data dir directly.
func personCommand(ctx context.Context, e *env, name string, args []string,
	viaAPI func(ctx context.Context, a *adminClient, email string) error,
	direct func(ctx context.Context, cfg *config.Config, st storage.Store, p storage.Profile) error) int {
	fs := newFlags(e, name, "EMAIL [--data-dir DIR] [-c FILE]")
	cfgPath := fs.String("c", "", "config file (default ./nudge.yaml, then ./config.example.yaml)")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	email := behavior.NormalizeEmail(pos[0])
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	a := newAdminClient(cfg)
	if a.reachable(ctx) {
		if err := viaAPI(ctx, a, email); err != nil {
			var he *httpError
			if errors.As(err, &he) && he.status == http.StatusNotFound {
				fmt.Fprintf(e.stderr, "nudge %s: no profile for %s\n", name, email)
				return 1
			}
			fmt.Fprintf(e.stderr, "nudge %s: %v\n", name, err)
			return 1
		}
		return 0
	}
	db, err := openDirect(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "nudge %s: %v\n", name, err)
		return 1
	}
	defer db.Close()
	p, err := db.ProfileByEmail(ctx, email)
	if errors.Is(err, storage.ErrNotFound) {
		fmt.Fprintf(e.stderr, "nudge %s: no profile for %s\n", name, email)
		return 1
	}
	if err == nil {
		err = direct(ctx, cfg, db, p)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "nudge %s: %v\n", name, err)
		return 1
	}
	return 0
}

func copyJSON(w io.Writer, r io.Reader) error {
	var v any
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		return err
	}
	return writeJSON(w, v)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdProfile(ctx context.Context, e *env, args []string) int {
	return personCommand(ctx, e, "profile", args,
		func(ctx context.Context, a *adminClient, email string) error {
			resp, err := a.do(ctx, http.MethodGet, "/api/v1/profiles/"+emailPath(email), nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			return copyJSON(e.stdout, resp.Body)
		},
		func(ctx context.Context, cfg *config.Config, st storage.Store, p storage.Profile) error {
			v, err := server.BuildProfileView(ctx, st, p, 500)
			if err != nil {
				return err
			}
			return writeJSON(e.stdout, v)
		})
}

func cmdExport(ctx context.Context, e *env, args []string) int {
	return personCommand(ctx, e, "export", args,
		func(ctx context.Context, a *adminClient, email string) error {
			resp, err := a.do(ctx, http.MethodGet, "/api/v1/profiles/"+emailPath(email)+"/export", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			return copyJSON(e.stdout, resp.Body)
		},
		func(ctx context.Context, cfg *config.Config, st storage.Store, p storage.Profile) error {
			x, err := server.BuildExport(ctx, st, p, time.Now().UTC())
			if err != nil {
				return err
			}
			return writeJSON(e.stdout, x)
		})
}

func cmdForget(ctx context.Context, e *env, args []string) int {
	return personCommand(ctx, e, "forget", args,
		func(ctx context.Context, a *adminClient, email string) error {
			resp, err := a.do(ctx, http.MethodDelete, "/api/v1/profiles/"+emailPath(email), nil)
			if err != nil {
				return err
			}
			resp.Body.Close()
			fmt.Fprintf(e.stdout, "forgot %s\n", email)
			return nil
		},
		func(ctx context.Context, cfg *config.Config, st storage.Store, p storage.Profile) error {
			if err := app.Forget(ctx, st, cfg.DataDir, p); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "forgot %s\n", p.Email)
			return nil
		})
}

func cmdBackup(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "backup", "FILE [--data-dir DIR] [-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	out := pos[0]
	// Write to a temp file and rename, so a failed backup never leaves a
	// truncated file under the requested name.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".nudge-backup-*")
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge backup:", err)
		return 1
	}
	defer os.Remove(tmp.Name())
	var n int64
	a := newAdminClient(cfg)
	if a.reachable(ctx) {
		resp, err := a.do(ctx, http.MethodGet, "/api/v1/backup", nil)
		if err == nil {
			n, err = io.Copy(tmp, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			tmp.Close()
			fmt.Fprintln(e.stderr, "nudge backup:", err)
			return 1
		}
	} else {
		db, err := openDirect(cfg)
		if err != nil {
			tmp.Close()
			fmt.Fprintln(e.stderr, "nudge backup:", err)
			return 1
		}
		n, err = db.Backup(ctx, tmp)
		db.Close()
		if err != nil {
			tmp.Close()
			fmt.Fprintln(e.stderr, "nudge backup:", err)
			return 1
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		fmt.Fprintln(e.stderr, "nudge backup:", err)
		return 1
	}
	tmp.Close()
	// Verify the snapshot opens as a store before calling it a backup.
	check, err := storage.Open(tmp.Name(), storage.Options{LockTimeout: time.Second})
	if err == nil {
		err = check.Check()
		check.Close()
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge backup: snapshot failed verification:", err)
		return 1
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		fmt.Fprintln(e.stderr, "nudge backup:", err)
		return 1
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes); restore by stopping nudge and copying it to %s\n", out, n, filepath.Join(cfg.DataDir, storage.FileName))
	return 0
}
