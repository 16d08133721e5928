// Package ruletest runs rule unit-test files (CONTRACT §7), like promtool
// test rules: every test case gets a fresh real store in a temporary
// directory, a fake clock, the scheduler, the journey engine and the real
// sending dispatcher delivering to an in-memory Recorder; its events are
// ingested at their offsets while the clock advances from due job to due
// job, and the messages that reached the recorder are compared with
// expect_sends (to the second).
//
// Extensions to the §7 format:
//
//	start: 2026-01-05T09:00:00Z   # the fake clock's start (default: a Monday, 09:00 UTC)
//	policies:                     # config.Policies; default: require_consent true, no cap, no quiet hours
//	  frequency_cap: { max: 1, per: 24h }
//	  quiet_hours: { start: "21:00", end: "08:00" }
//	tests:
//	  - name: ...
//	    run_for: 30d              # how long the clock runs after the last event (default: the
//	                              # longest rule's total wait + 2d, at least past the last expected send)
//	    events:
//	      - at: 0s                # offset from start
//	        kind: product_updated # any record kind; identities are optional for catalog records
//	        first_name: Ann       # person facts: first_name, last_name, timezone
//	        items: [{ product_id: p1, price: 4000, available: 3 }]
//
// Event fields: at, kind, id, email, customer_id, anonymous_id, consent
// (granted|denied|pending), value, currency, items, query, url, seconds,
// refs, attrs, store, first_name, last_name, timezone.
package ruletest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/storage"
)

// File is one rule test file.
type File struct {
	RuleFiles []string         `yaml:"rule_files"`
	Start     string           `yaml:"start"`
	Policies  *config.Policies `yaml:"policies"`
	Tests     []Case           `yaml:"tests"`
}

// Case is one test.
type Case struct {
	Name        string   `yaml:"name"`
	RunFor      string   `yaml:"run_for"`
	Events      []Event  `yaml:"events"`
	ExpectSends []Expect `yaml:"expect_sends"`
}

// Event is one record ingested at an offset from the start.
type Event struct {
	At          string            `yaml:"at"`
	ID          string            `yaml:"id"`
	Kind        string            `yaml:"kind"`
	Email       string            `yaml:"email"`
	CustomerID  string            `yaml:"customer_id"`
	AnonymousID string            `yaml:"anonymous_id"`
	Consent     string            `yaml:"consent"`
	Value       int64             `yaml:"value"`
	Currency    string            `yaml:"currency"`
	Items       []Item            `yaml:"items"`
	Query       string            `yaml:"query"`
	URL         string            `yaml:"url"`
	Seconds     float64           `yaml:"seconds"`
	Refs        map[string]string `yaml:"refs"`
	Attrs       map[string]any    `yaml:"attrs"`
	Store       string            `yaml:"store"`
	FirstName   string            `yaml:"first_name"`
	LastName    string            `yaml:"last_name"`
	Timezone    string            `yaml:"timezone"`
}

// Item is a line item of an event.
type Item struct {
	ProductID string `yaml:"product_id"`
	VariantID string `yaml:"variant_id"`
	SKU       string `yaml:"sku"`
	Title     string `yaml:"title"`
	URL       string `yaml:"url"`
	ImageURL  string `yaml:"image_url"`
	Price     int64  `yaml:"price"`
	Quantity  int    `yaml:"quantity"`
	Category  string `yaml:"category"`
	Available *int64 `yaml:"available"`
}

// Expect is one expected send.
type Expect struct {
	At    string `yaml:"at"`
	Rule  string `yaml:"rule"`
	Step  int    `yaml:"step"`
	Email string `yaml:"email"`
}

// Options configure Run.
type Options struct {
	// Run, when set, runs only the tests whose name matches.
	Run *regexp.Regexp
}

// Result is the outcome of a run.
type Result struct {
	Files []FileResult
}

// FileResult is the outcome of one test file. Err is set when the file
// or its rules could not be loaded; then Cases is empty.
type FileResult struct {
	File  string
	Err   error
	Cases []CaseResult
}

// CaseResult is the outcome of one test.
type CaseResult struct {
	Name     string
	Expected []string // canonical send lines, sorted
	Actual   []string
	// Diff lists the differing lines: "- " expected but not sent, "+ "
	// sent but not expected. Empty when the case passed.
	Diff []string
	// Why explains, per profile and rule, what the engine decided: every
	// journey's outcome and every trigger match that started none.
	Why []string
	Err error
}

// Passed reports whether the case ran and sent exactly what was expected.
func (c CaseResult) Passed() bool { return c.Err == nil && len(c.Diff) == 0 }

// OK reports whether every file loaded and every case passed.
func (r Result) OK() bool {
	for _, f := range r.Files {
		if f.Err != nil {
			return false
		}
		for _, c := range f.Cases {
			if !c.Passed() {
				return false
			}
		}
	}
	return true
}

// Counts returns how many cases passed and failed (a file that did not
// load counts as one failure).
func (r Result) Counts() (passed, failed int) {
	for _, f := range r.Files {
		if f.Err != nil {
			failed++
		}
		for _, c := range f.Cases {
			if c.Passed() {
				passed++
			} else {
				failed++
			}
		}
	}
	return passed, failed
}

// WriteText prints, promtool style, one line per failing case followed by
// its diff of expected (-) and actual (+) sends, then SUCCESS or FAILED.
func (r Result) WriteText(w io.Writer) error {
	var b bytes.Buffer
	for _, f := range r.Files {
		if f.Err != nil {
			fmt.Fprintf(&b, "FAIL %s: %v\n", f.File, indent(f.Err.Error()))
			continue
		}
		for _, c := range f.Cases {
			switch {
			case c.Err != nil:
				fmt.Fprintf(&b, "FAIL %s: %q: %v\n", f.File, c.Name, c.Err)
			case len(c.Diff) > 0:
				fmt.Fprintf(&b, "FAIL %s: %q: sends differ (- expected, + actual)\n", f.File, c.Name)
				for _, d := range c.Diff {
					fmt.Fprintf(&b, "    %s\n", d)
				}
				for _, w := range c.Why {
					fmt.Fprintf(&b, "    why: %s\n", w)
				}
			}
		}
	}
	passed, failed := r.Counts()
	if failed == 0 {
		fmt.Fprintf(&b, "SUCCESS: %d tests passed\n", passed)
	} else {
		fmt.Fprintf(&b, "FAILED: %d of %d tests failed\n", failed, passed+failed)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }

// Main is `nudge test FILE... [--run REGEX]`: it runs the files, prints
// the result to w and returns the exit code (0 all passed, 1 otherwise).
func Main(ctx context.Context, w io.Writer, files []string, run string) int {
	var opts Options
	if run != "" {
		re, err := regexp.Compile(run)
		if err != nil {
			fmt.Fprintf(w, "invalid --run pattern: %v\n", err)
			return 1
		}
		opts.Run = re
	}
	res, err := Run(ctx, files, opts)
	if err != nil {
		fmt.Fprintf(w, "%v\n", err)
		return 1
	}
	if err := res.WriteText(w); err != nil || !res.OK() {
		return 1
	}
	return 0
}

// Run runs the test files. Problems of one file or case are in the
// Result; the error is for the run as a whole (a cancelled ctx).
func Run(ctx context.Context, files []string, opts Options) (Result, error) {
	var res Result
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Files = append(res.Files, runFile(ctx, f, opts))
	}
	return res, nil
}

// ParseFile reads a test file strictly: unknown keys are errors.
func ParseFile(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a test file's content; path is used in messages.
func Parse(data []byte, path string) (File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.RuleFiles) == 0 {
		return File{}, fmt.Errorf("%s: rule_files: at least one rule file is required", path)
	}
	return f, nil
}

func runFile(ctx context.Context, path string, opts Options) FileResult {
	fr := FileResult{File: path}
	tf, err := ParseFile(path)
	if err != nil {
		fr.Err = err
		return fr
	}
	ruleFiles := make([]string, len(tf.RuleFiles))
	for i, rf := range tf.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(filepath.Dir(path), rf)
		}
		ruleFiles[i] = rf
	}
	set, err := rules.Load(ruleFiles)
	if err != nil {
		fr.Err = err
		return fr
	}
	start := DefaultStart
	if tf.Start != "" {
		if start, err = time.Parse(time.RFC3339, tf.Start); err != nil {
			fr.Err = fmt.Errorf("start: %w", err)
			return fr
		}
	}
	pol := config.Policies{RequireConsent: true}
	if tf.Policies != nil {
		pol = *tf.Policies
	}
	for i, tc := range tf.Tests {
		if opts.Run != nil && !opts.Run.MatchString(tc.Name) {
			continue
		}
		cr := CaseResult{Name: tc.Name}
		if cr.Name == "" {
			cr.Name = "test " + strconv.Itoa(i+1)
		}
		exp, act, why, err := runCase(ctx, path, i, tc, set, start, pol)
		cr.Err = err
		if err == nil {
			cr.Expected, cr.Actual, cr.Diff = texts(exp), texts(act), diff(exp, act)
			if len(cr.Diff) > 0 {
				cr.Why = why
			}
		}
		fr.Cases = append(fr.Cases, cr)
	}
	return fr
}

// runCase runs one case in a fresh store and returns the expected and
// actual sends as canonical lines.
func runCase(ctx context.Context, file string, idx int, tc Case, set *rules.Set, start time.Time, pol config.Policies) (expected, actual []sendLine, why []string, err error) {
	type timed struct {
		at  time.Duration
		rec behavior.Record
	}
	var events []timed
	var last time.Duration
	for i, ev := range tc.Events {
		at, err := offset(ev.At)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("events[%d].at: %w", i+1, err)
		}
		rec, err := ev.record(file, idx, i, start.Add(at))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("events[%d]: %w", i+1, err)
		}
		events = append(events, timed{at, rec})
		last = max(last, at)
	}
	slices.SortStableFunc(events, func(a, b timed) int { return cmpDur(a.at, b.at) })
	var lastExpect time.Duration
	for i, ex := range tc.ExpectSends {
		at, err := offset(ex.At)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("expect_sends[%d].at: %w", i+1, err)
		}
		expected = append(expected, line(at, ex.Rule, ex.Step, behavior.NormalizeEmail(ex.Email)))
		lastExpect = max(lastExpect, at)
	}
	sortLines(expected)

	horizon := last + longestJourney(set) + 48*time.Hour
	if tc.RunFor != "" {
		d, err := config.ParseDuration(tc.RunFor)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("run_for: %w", err)
		}
		horizon = last + d
	}
	horizon = max(horizon, lastExpect+time.Hour)

	dir, err := os.MkdirTemp("", "nudge-ruletest-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer os.RemoveAll(dir)
	h, err := NewHarness(HarnessOptions{Dir: dir, Clock: clock.NewFake(start), Rules: set, Policies: pol})
	if err != nil {
		return nil, nil, nil, err
	}
	defer h.Close()

	// Events at one instant go in before that instant's jobs run, so an
	// order at the very time a reminder is due wins, as it would live.
	for i := 0; i < len(events); {
		at := start.Add(events[i].at)
		if _, err := h.RunUntil(ctx, at.Add(-time.Nanosecond)); err != nil {
			return nil, nil, nil, err
		}
		h.Clock.Set(at)
		for ; i < len(events) && start.Add(events[i].at).Equal(at); i++ {
			if err := h.Ingest(ctx, events[i].rec); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if _, err := h.RunUntil(ctx, start.Add(horizon)); err != nil {
		return nil, nil, nil, err
	}
	sends, err := h.Sends(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, s := range sends {
		actual = append(actual, line(s.At.Sub(start).Round(time.Second), s.Rule, s.Step, s.Email))
	}
	sortLines(actual)
	why, err = explain(ctx, h, start)
	return expected, actual, why, err
}

// explain summarises the engine's decisions for a failing case: each
// journey's outcome and each trigger match that started none.
func explain(ctx context.Context, h *Harness, start time.Time) ([]string, error) {
	var out []string
	err := h.Store.ScanProfiles(ctx, func(p storage.Profile) error {
		who := p.Email
		if who == "" {
			who = "profile " + p.ID
		}
		x, err := journey.Explain(ctx, h.Store, p.ID, "")
		if err != nil {
			return err
		}
		for _, d := range x.Decisions {
			if !d.Started {
				out = append(out, fmt.Sprintf("%s %s: at %s not started: %s", who, d.Rule, FormatOffset(d.At.Sub(start)), d.Reason))
			}
		}
		for _, j := range x.Journeys {
			state := j.Status
			if j.Reason != "" {
				state += " (" + j.Reason + ")"
			}
			if j.Active() {
				state += fmt.Sprintf(", step %d due at %s", j.Step, FormatOffset(j.DueAt.Sub(start)))
			}
			out = append(out, fmt.Sprintf("%s %s: journey started at %s, %s", who, j.Rule, FormatOffset(j.StartedAt.Sub(start)), state))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// longestJourney is the longest total wait of any rule, plus a day per
// best-hour step.
func longestJourney(set *rules.Set) time.Duration {
	var longest time.Duration
	for _, r := range set.Rules() {
		var d time.Duration
		for _, s := range r.Steps {
			d += s.Wait
			if s.BestHour {
				d += 24 * time.Hour
			}
		}
		longest = max(longest, d)
	}
	return longest
}

func (ev Event) record(file string, caseIdx, i int, at time.Time) (behavior.Record, error) {
	k := behavior.Kind(ev.Kind)
	if !k.Valid() {
		return behavior.Record{}, fmt.Errorf("kind: unknown event kind %q", ev.Kind)
	}
	id := ev.ID
	if id == "" {
		id = behavior.DeriveID("ruletest", file, strconv.Itoa(caseIdx), strconv.Itoa(i))
	}
	store := ev.Store
	if store == "" {
		store = TestStore.ID
	}
	cur := ev.Currency
	if cur == "" && (ev.Value != 0 || len(ev.Items) > 0) {
		cur = TestStore.Currency
	}
	r := behavior.Record{
		ID: id, Kind: k, Source: "test", Store: store, At: at,
		Email: ev.Email, CustomerID: ev.CustomerID, AnonymousID: ev.AnonymousID,
		Value: ev.Value, Currency: cur, Query: ev.Query, URL: ev.URL, Seconds: ev.Seconds,
		Refs: ev.Refs, Attrs: ev.Attrs,
	}
	for _, it := range ev.Items {
		r.Items = append(r.Items, behavior.Item{
			ProductID: it.ProductID, VariantID: it.VariantID, SKU: it.SKU, Title: it.Title, URL: it.URL,
			ImageURL: it.ImageURL, Price: it.Price, Quantity: it.Quantity, Category: it.Category, Available: it.Available,
		})
	}
	switch ev.Consent {
	case "":
	case behavior.ConsentGranted, behavior.ConsentDenied, behavior.ConsentPending:
		r.Consent = &behavior.Consent{State: ev.Consent, CollectedFrom: "test"}
	default:
		return behavior.Record{}, fmt.Errorf("consent: want granted, denied or pending, got %q", ev.Consent)
	}
	if ev.FirstName != "" || ev.LastName != "" || ev.Timezone != "" {
		r.Person = &behavior.Person{FirstName: ev.FirstName, LastName: ev.LastName, Timezone: ev.Timezone}
	}
	return r, nil
}

// offset reads an offset from the start: a rule duration ("90m", "1d").
func offset(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("missing")
	}
	return config.ParseDuration(s)
}

// sendLine is one send in canonical form: its offset (for ordering) and
// the text diffs print.
type sendLine struct {
	at   time.Duration
	text string
}

func line(at time.Duration, rule string, step int, email string) sendLine {
	return sendLine{at: at, text: fmt.Sprintf("at %-8s rule %s step %d to %s", FormatOffset(at), rule, step, email)}
}

func sortLines(ls []sendLine) {
	slices.SortStableFunc(ls, func(a, b sendLine) int {
		if a.at != b.at {
			return cmpDur(a.at, b.at)
		}
		return strings.Compare(a.text, b.text)
	})
}

func cmpDur(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func texts(ls []sendLine) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.text
	}
	return out
}

// FormatOffset prints an offset compactly: "0s", "45m", "1d2h", "2d0h30m".
func FormatOffset(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	units := []struct {
		u    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for _, u := range units {
		if n := d / u.u; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.u
		}
	}
	return b.String()
}

// diff compares two time-sorted send lists as multisets and returns the
// differences in time order: "- " expected but not sent, "+ " sent but
// not expected.
func diff(expected, actual []sendLine) []string {
	left := map[string]int{}
	for _, e := range expected {
		left[e.text]++
	}
	var out []sendLine
	for _, a := range actual {
		if left[a.text] > 0 {
			left[a.text]--
			continue
		}
		out = append(out, sendLine{at: a.at, text: "+ " + a.text})
	}
	for _, e := range expected {
		if left[e.text] > 0 {
			left[e.text]--
			out = append(out, sendLine{at: e.at, text: "- " + e.text})
		}
	}
	// Expected before actual at the same time, like a unified diff.
	slices.SortStableFunc(out, func(a, b sendLine) int {
		if a.at != b.at {
			return cmpDur(a.at, b.at)
		}
		return strings.Compare(b.text[:1], a.text[:1])
	})
	return texts(out)
}
