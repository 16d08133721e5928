package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nudge-email/nudge/importer"
)

func cmdImport(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "import", "FILE... [--format records-ndjson|shopify-orders-csv|woocommerce-orders-csv] [--store ID] [--data-dir DIR] [-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
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
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
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
			// The running server holds the store: import through its API,
			// with the same report and exit status as without a server.
			rep, err := importThroughServer(ctx, e, a, groups[fm], fm, *storeID)
			if werr := rep.WriteText(e.stdout); werr != nil && err == nil {
				err = werr
			}
			if err != nil {
				fmt.Fprintln(e.stderr, "nudge import:", err)
				return 1
			}
			if rep.Rejected > 0 {
				failed = true
			}
			continue
		}
		db, err := openDirect(cfg)
		if err != nil {
			fmt.Fprintln(e.stderr, "nudge import:", err)
			return 1
		}
		rep, err := importer.Run(ctx, db, groups[fm], fm, opts)
		if rep.Imported > 0 {
			// The next serve refits the models at start instead of
			// keeping a saved fit that misses this history.
			if merr := db.MarkBackfilled(ctx, time.Now()); merr != nil && err == nil {
				err = merr
			}
		}
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

// importChunk is the most records-ndjson one API request carries: a file
// goes in pieces well under the server's body limit (64× the webhook
// limit) and its write timeout, each piece committed as it arrives.
const importChunk = 4 << 20

// importThroughServer posts files to a running server's /api/v1/import
// and adds up its reports. records-ndjson goes in pieces of whole lines,
// each saying its first line's number, so errors name the file's lines
// and a file of any size imports; a CSV export goes whole (an order's
// rows must stay together), bounded by the server's body limit.
func importThroughServer(ctx context.Context, e *env, a *adminClient, files []string, format, store string) (importer.Report, error) {
	var total importer.Report
	start := time.Now()
	defer func() { total.Elapsed = time.Since(start) }()
	post := func(f string, firstLine int, body []byte) error {
		q := url.Values{"file": {filepath.Base(f)}, "line": {strconv.Itoa(firstLine)}}
		if format != importer.FormatNDJSON {
			q.Set("format", format)
			if store != "" {
				q.Set("store", store)
			}
		}
		resp, err := a.do(ctx, http.MethodPost, "/api/v1/import?"+q.Encode(), bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		defer resp.Body.Close()
		var rep importer.Report
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			return fmt.Errorf("%s: reading the server's report: %w", f, err)
		}
		total.Rows += rep.Rows
		total.Records += rep.Records
		total.Imported += rep.Imported
		total.Duplicates += rep.Duplicates
		total.Rejected += rep.Rejected
		total.Skipped += rep.Skipped
		total.Errors = append(total.Errors, rep.Errors...)
		total.ErrorsOmitted += rep.ErrorsOmitted
		return nil
	}
	for _, f := range files {
		total.Files++
		raw, err := os.ReadFile(f)
		if err != nil {
			return total, err
		}
		if format != importer.FormatNDJSON {
			if err := post(f, 1, raw); err != nil {
				return total, err
			}
			continue
		}
		if raw, err = gunzipIfGzip(raw); err != nil {
			return total, fmt.Errorf("%s: %w", f, err)
		}
		chunk := importChunk
		if e.importChunk > 0 {
			chunk = e.importChunk
		}
		line := 1
		for len(raw) > 0 {
			n := len(raw)
			if n > chunk {
				// End the piece at a line end; one line longer than a
				// piece goes alone (the server rejects it as too long).
				if i := bytes.LastIndexByte(raw[:chunk], '\n'); i >= 0 {
					n = i + 1
				} else if i := bytes.IndexByte(raw, '\n'); i >= 0 {
					n = i + 1
				}
			}
			if err := post(f, line, raw[:n]); err != nil {
				return total, err
			}
			line += bytes.Count(raw[:n], []byte("\n"))
			raw = raw[n:]
			fmt.Fprintf(e.stderr, "%s: %d lines sent, %d imported, %d duplicates, %d rejected\n", filepath.Base(f), line-1, total.Imported, total.Duplicates, total.Rejected)
		}
	}
	return total, nil
}

// gunzipIfGzip returns b, or its decompressed content when it is gzip.
func gunzipIfGzip(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(zr)
}
