// Package importer backfills history (CONTRACT §1 `nudge import`, §3
// `POST /api/v1/import`) from records-ndjson, Shopify's order export CSV
// and WooCommerce's Customer/Order CSV Export, so that insights and rules
// have data from day one.
//
// Imports take the same road as live webhooks: every row becomes
// normalized behavior records with the ids the live connectors give the
// same events, validated here and stored through storage.Store.Append in
// batches, which dedupes, merges identities and updates profiles. Ids are
// deterministic, so importing a file twice changes nothing the second
// time: every record is counted as a duplicate.
//
// A bad line never fails the import: it is rejected with its line number
// before anything reaches the store, and the rest goes on. Run returns an
// error only when it cannot go on at all (an unreadable file, a format it
// cannot recognise, missing columns, a store failure, a cancelled context).
package importer

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// Format names, as `nudge import --format` takes them.
const (
	FormatNDJSON      = "records-ndjson"
	FormatShopify     = "shopify-orders-csv"
	FormatWooCommerce = "woocommerce-orders-csv"
)

// Formats lists the accepted format names.
func Formats() []string { return []string{FormatNDJSON, FormatShopify, FormatWooCommerce} }

// Topic is the behavior.AttrTopic of records made from CSV exports, so
// rules and reports can tell backfilled orders from live ones.
const Topic = "import"

// DefaultBatchSize is how many records go into one Append: large enough
// to amortize the commit, small enough to keep one transaction short.
const DefaultBatchSize = 1000

// DefaultMaxErrors is how many line errors a Report keeps; the rest are
// only counted, so a wholly wrong file cannot exhaust memory.
const DefaultMaxErrors = 1000

// Options tune an import.
type Options struct {
	// Progress receives progress: a redrawn bar when it is a terminal,
	// a line every few seconds otherwise; nil for none.
	Progress io.Writer
	// BatchSize is the number of records per Append (default 1000).
	BatchSize int
	// StoreID is the configured store the CSV exports come from; it goes
	// into record ids exactly as the live connector puts it, so that
	// imported orders and later webhooks about them dedupe. Required for
	// the CSV formats; records-ndjson lines carry their own store.
	StoreID string
	// Currency applies to CSV rows without a currency column (usually the
	// store's currency from the config).
	Currency string
	// StoreSources maps configured store ids to their platform
	// ("shopify", "woocommerce"). A records-ndjson line naming one of
	// these stores but no source gets the platform as its source, so its
	// customer_id joins the customer the store's webhooks know (customer
	// ids are per source and store). The line's id is derived before,
	// so re-importing a file keeps its ids.
	StoreSources map[string]string
	// Location is the zone of CSV timestamps that carry no offset
	// (WooCommerce writes the site's local time); default UTC.
	Location *time.Location
	// FirstLine is the number of the input's first line in its file
	// (default 1), for a records-ndjson file sent in pieces: errors then
	// name the file's own line numbers.
	FirstLine int
	// MaxErrors caps Report.Errors (default 1000).
	MaxErrors int
	// NowFunc is the clock for progress rates and Report.Elapsed
	// (default time.Now).
	NowFunc func() time.Time
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = DefaultMaxErrors
	}
	if o.NowFunc == nil {
		o.NowFunc = time.Now
	}
	o.Currency = strings.ToUpper(strings.TrimSpace(o.Currency))
	return o
}

// LineError is one rejected line or row.
type LineError struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Msg  string `json:"error"`
}

// Error formats the error as "file:line: msg".
func (e LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Report says what an import did. Imported and Duplicates count records;
// Rows, Rejected and Skipped count input lines (ndjson) or rows (CSV).
type Report struct {
	Files      int `json:"files"`
	Rows       int `json:"rows"`
	Records    int `json:"records"`
	Imported   int `json:"imported"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	// Skipped counts rows deliberately left out, such as failed or
	// unpaid WooCommerce orders, which would only start abandonment and
	// dunning journeys for history.
	Skipped int         `json:"skipped"`
	Errors  []LineError `json:"errors,omitempty"`
	// ErrorsOmitted counts rejected rows beyond Options.MaxErrors.
	ErrorsOmitted int           `json:"errors_omitted,omitempty"`
	Elapsed       time.Duration `json:"elapsed_ns"`
}

// WriteText prints the report for people: one summary line, then one
// "file:line: message" line per rejected row.
func (r Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "imported %d records, %d duplicates, from %d rows in %d file(s); rejected %d rows, skipped %d (%s)\n",
		r.Imported, r.Duplicates, r.Rows, r.Files, r.Rejected, r.Skipped, r.Elapsed.Round(time.Millisecond))
	for _, e := range r.Errors {
		fmt.Fprintf(bw, "%s\n", e.Error())
	}
	if r.ErrorsOmitted > 0 {
		fmt.Fprintf(bw, "… and %d more rejected rows\n", r.ErrorsOmitted)
	}
	return bw.Flush()
}

func (r *Report) reject(max int, file string, line int, rows int, format string, args ...any) {
	r.Rejected += rows
	if len(r.Errors) >= max {
		r.ErrorsOmitted += rows
		return
	}
	r.Errors = append(r.Errors, LineError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Run imports files in order into store. format is one of Formats, or ""
// to detect each file's format from its name and first line. Files may
// be gzip-compressed. The report is valid (and counts what was stored)
// even when an error stops the run.
func Run(ctx context.Context, store storage.Store, files []string, format string, opts Options) (Report, error) {
	opts = opts.withDefaults()
	start := opts.NowFunc()
	var rep Report
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			rep.Elapsed = opts.NowFunc().Sub(start)
			return rep, fmt.Errorf("import: %w", err)
		}
		size := int64(-1)
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		err = importOne(ctx, store, name, f, size, format, opts, &rep)
		f.Close()
		if err != nil {
			rep.Elapsed = opts.NowFunc().Sub(start)
			return rep, err
		}
	}
	rep.Elapsed = opts.NowFunc().Sub(start)
	return rep, nil
}

// ImportReader imports one stream, named name in errors (the admin API's
// request body, standard input).
func ImportReader(ctx context.Context, store storage.Store, name string, r io.Reader, format string, opts Options) (Report, error) {
	opts = opts.withDefaults()
	start := opts.NowFunc()
	var rep Report
	err := importOne(ctx, store, name, r, -1, format, opts, &rep)
	rep.Elapsed = opts.NowFunc().Sub(start)
	return rep, err
}

// maxLine bounds one ndjson line or CSV row; anything longer is not an
// export of ours or the stores'.
const maxLine = 16 << 20

func importOne(ctx context.Context, store storage.Store, name string, r io.Reader, size int64, format string, opts Options, rep *Report) error {
	rep.Files++
	// Orders are checked when their last row has been read, so errors can
	// be found out of order: sort this file's by line at the end.
	firstErr := len(rep.Errors)
	defer func() {
		mine := rep.Errors[firstErr:]
		sort.SliceStable(mine, func(i, j int) bool { return mine[i].Line < mine[j].Line })
	}()
	counted := &countingReader{r: r}
	prog := newProgress(opts.Progress, name, size, opts.NowFunc)
	defer prog.done(rep)

	body, closeBody, err := decompress(bufio.NewReaderSize(counted, 1<<16))
	if err != nil {
		return fmt.Errorf("import: %s: %w", name, err)
	}
	defer closeBody()
	if format == "" {
		if format, err = detect(name, body); err != nil {
			return err
		}
	}
	b := &batcher{ctx: ctx, store: store, opts: opts, file: name, rep: rep, prog: prog, counted: counted}
	switch format {
	case FormatNDJSON:
		err = readNDJSON(body, b)
	case FormatShopify:
		err = readShopify(body, b)
	case FormatWooCommerce:
		err = readWooCommerce(body, b)
	default:
		return fmt.Errorf("import: unknown format %q (known: %s)", format, strings.Join(Formats(), ", "))
	}
	if err != nil {
		return err
	}
	return b.flush()
}

// detect picks a format from the file name, then from the first line.
func detect(name string, r *bufio.Reader) (string, error) {
	base := strings.ToLower(strings.TrimSuffix(filepath.Base(name), ".gz"))
	switch filepath.Ext(base) {
	case ".ndjson", ".jsonl", ".json":
		return FormatNDJSON, nil
	}
	head, _ := r.Peek(64 << 10)
	head = trimBOM(head)
	first := strings.TrimLeft(string(head), " \t\r\n")
	if strings.HasPrefix(first, "{") {
		return FormatNDJSON, nil
	}
	line, _, _ := strings.Cut(first, "\n")
	cols := map[string]bool{}
	for _, c := range strings.Split(line, ",") {
		cols[normHeader(strings.Trim(strings.TrimSpace(c), `"`))] = true
	}
	switch {
	case cols["name"] && (cols["lineitem_name"] || cols["created_at"]):
		return FormatShopify, nil
	case (cols["order_id"] || cols["order_number"]) && cols["billing_email"]:
		return FormatWooCommerce, nil
	}
	return "", fmt.Errorf("import: %s: cannot tell the format from its name or first line; pass one of %s", name, strings.Join(Formats(), ", "))
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf {
		return b[3:]
	}
	return b
}

// countingReader counts the bytes read from the file itself (compressed,
// for gzip files) so progress can be measured against the file size.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// batcher validates records, keeps the line each came from, and appends
// them in batches.
type batcher struct {
	ctx     context.Context
	store   storage.Store
	opts    Options
	file    string
	rep     *Report
	prog    *progress
	counted *countingReader

	recs  []behavior.Record
	lines []int
}

// row notes that one input row was read, for the counts and progress.
func (b *batcher) row() {
	b.rep.Rows++
	b.prog.update(b.counted.n, b.rep)
}

// reject records a rejected input unit spanning rows rows.
func (b *batcher) reject(line, rows int, format string, args ...any) {
	b.rep.reject(b.opts.MaxErrors, b.file, line, rows, format, args...)
}

// add validates the records one input unit produced and queues them, or
// rejects the unit (rows rows starting at line) as a whole, so an order is
// never stored half.
//
// label names the unit in messages ("order #1001"); "" for a plain line.
func (b *batcher) add(line, rows int, label string, recs ...behavior.Record) error {
	for i := range recs {
		if err := prepare(&recs[i]); err != nil {
			if label != "" {
				b.reject(line, rows, "%s: %v", label, err)
			} else {
				b.reject(line, rows, "%v", err)
			}
			return nil
		}
		if r := &recs[i]; r.Source == "" && r.Store != "" {
			r.Source = b.opts.StoreSources[r.Store]
		}
	}
	for _, r := range recs {
		b.recs = append(b.recs, r)
		b.lines = append(b.lines, line)
	}
	b.rep.Records += len(recs)
	if len(b.recs) >= b.opts.BatchSize {
		return b.flush()
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.recs) == 0 {
		return nil
	}
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	recs, lines := b.recs, b.lines
	b.recs, b.lines = nil, nil
	res, err := b.store.Append(b.ctx, storage.Ingest{Records: recs, EvaluateSince: b.evaluateSince()})
	switch {
	case err == nil:
		b.rep.Duplicates += res.Duplicates
		b.rep.Imported += len(recs) - res.Duplicates
	case errors.Is(err, storage.ErrInvalid):
		// The store refused something prepare let through (its rules
		// moved on): find the culprits one by one rather than lose the
		// batch.
		return b.appendEach(recs, lines)
	default:
		return fmt.Errorf("import: %s: store: %w", b.file, err)
	}
	b.prog.update(b.counted.n, b.rep)
	return nil
}

// evaluateSince is the journey engine's trigger age before now: imported
// records older than that can start no journey, so they get no
// evaluation job (storage.Ingest.EvaluateSince).
func (b *batcher) evaluateSince() time.Time { return b.opts.NowFunc().Add(-24 * time.Hour) }

func (b *batcher) appendEach(recs []behavior.Record, lines []int) error {
	bad := map[int]bool{}
	for i, r := range recs {
		if bad[lines[i]] {
			continue
		}
		res, err := b.store.Append(b.ctx, storage.Ingest{Records: []behavior.Record{r}, EvaluateSince: b.evaluateSince()})
		switch {
		case err == nil:
			b.rep.Duplicates += res.Duplicates
			b.rep.Imported += 1 - res.Duplicates
		case errors.Is(err, storage.ErrInvalid):
			bad[lines[i]] = true
			b.rep.Records--
			b.reject(lines[i], 1, "%v", err)
		default:
			return fmt.Errorf("import: %s: store: %w", b.file, err)
		}
	}
	return nil
}

// DetectFile tells the format of a file as Run does when given no format,
// so a caller can pick format-dependent options (OptionsFor) first.
func DetectFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	br, closeBody, err := decompress(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return "", fmt.Errorf("import: %s: %w", name, err)
	}
	defer closeBody()
	return detect(name, br)
}

// decompress returns r itself, or a reader of its gunzipped content when
// it starts with gzip's magic number.
func decompress(r *bufio.Reader) (*bufio.Reader, func(), error) {
	if magic, _ := r.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return r, func() {}, nil
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	return bufio.NewReaderSize(zr, 1<<16), func() { zr.Close() }, nil
}
