package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/nudge-email/nudge/importer"
)

func cmdImport(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "import", "FILE... [--format records-ndjson|shopify-orders-csv|woocommerce-orders-csv] [--store ID] [-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	format := fs.String("format", "", "input format (default: detected from each file)")
	storeID := fs.String("store", "", "store the CSV export comes from (default: the first of its platform)")
	files, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(e, *cfgPath)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	// Files of one format per run: group them by detected format.
	groups := map[string][]string{}
	var order []string
	for _, f := range files {
		fm := *format
		if fm == "" {
			if fm, err = importer.DetectFile(f); err != nil {
				fmt.Fprintln(e.stderr, "nudge import:", err)
				return 1
			}
		}
		if _, ok := groups[fm]; !ok {
			order = append(order, fm)
		}
		groups[fm] = append(groups[fm], f)
	}
	a := newAdminClient(cfg)
	serverUp := a.reachable(ctx)
	failed := false
	for _, fm := range order {
		opts, err := importer.OptionsFor(cfg, fm, *storeID)
		if err != nil {
			fmt.Fprintln(e.stderr, "nudge import:", err)
			return 1
		}
		opts.Progress = e.stderr
		if serverUp {
			// The running server holds the store; it imports ndjson through
			// its API. Other formats need the file converted there too, so
			// ask the operator to stop the server instead of guessing.
			if fm != importer.FormatNDJSON {
				fmt.Fprintf(e.stderr, "nudge import: a server is running; stop it to import %s files, or convert them to records-ndjson\n", fm)
				return 1
			}
			for _, f := range groups[fm] {
				body, err := os.ReadFile(f)
				if err != nil {
					fmt.Fprintln(e.stderr, "nudge import:", err)
					return 1
				}
				resp, err := a.do(ctx, http.MethodPost, "/api/v1/import", bytes.NewReader(body))
				if err != nil {
					fmt.Fprintf(e.stderr, "nudge import: %s: %v\n", f, err)
					return 1
				}
				if err := copyJSON(e.stdout, resp.Body); err != nil {
					failed = true
				}
				resp.Body.Close()
			}
			continue
		}
		db, err := openDirect(cfg)
		if err != nil {
			fmt.Fprintln(e.stderr, "nudge import:", err)
			return 1
		}
		rep, err := importer.Run(ctx, db, groups[fm], fm, opts)
		cerr := db.Close()
		if werr := rep.WriteText(e.stdout); werr != nil && err == nil {
			err = werr
		}
		if err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(e.stderr, "nudge import:", err)
			return 1
		}
		if rep.Rejected > 0 {
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}
