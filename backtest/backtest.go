// Package backtest replays stored history through rules without sending:
// `nudge backtest`. Every record is appended, in occurred-at order, to a
// temporary store on a fake clock that follows the records, and the real
// journey engine and the real sending dispatcher (policy gate, frequency
// cap, quiet hours, outbox) run on it exactly as they would live; only
// the provider is a sink. The source store is only read.
//
// Records before Since are replayed too, with no rules active, so that
// profiles (identities, order counts, consent) are as they were when
// the rules start. Known limits: consent changed outside records (admin,
// unsubscribe page) and insight scores (best hour) are not in the
// history; the suppression list is copied as it is now.
package backtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/rules/ruletest"
	"github.com/nudge-email/nudge/storage"
)

// Options configure a backtest.
type Options struct {
	// Since is when the rules start (zero: from the first record).
	Since time.Time
	// Until ends the replay (zero: now); steps due later count as waiting.
	Until time.Time
	// Rule limits the backtest to one rule id ("" = all).
	Rule     string
	Policies config.Policies
	Stores   []config.Store
	Timezone *time.Location
	// Dir is where the temporary store lives (default: the OS temp dir);
	// it is removed afterwards.
	Dir    string
	Logger *slog.Logger
}

// RuleReport is what one rule would have done.
type RuleReport struct {
	Rule string `json:"rule"`
	// Matched counts trigger matches: records of the trigger's kind
	// evaluated for a profile.
	Matched int `json:"matched"`
	// Filtered: trigger.where was false (or failed).
	Filtered int `json:"filtered"`
	// Started journeys, of which HeldOut in the control group.
	Started int `json:"started"`
	HeldOut int `json:"held_out"`
	// Sends[i] is how many sends step i+1 would have made; Held[i] how
	// many were recorded for the holdout instead.
	Sends []int `json:"sends"`
	Held  []int `json:"held"`
	// Stopped journeys and declined triggers, by cause.
	StoppedByExit      int `json:"stopped_by_exit"`      // an exit event
	StoppedByWhere     int `json:"stopped_by_where"`     // a step's where was false
	StoppedIrrelevant  int `json:"stopped_irrelevant"`   // bought, out of stock, price back up
	StoppedByLimit     int `json:"stopped_by_limit"`     // reenter_after or already in a journey
	StoppedByConsent   int `json:"stopped_by_consent"`   // no consent
	StoppedBySuppress  int `json:"stopped_by_suppress"`  // suppression list, unsubscribe, bounce
	CapDeferred        int `json:"cap_deferred"`         // steps that waited for the frequency cap
	CapSkipped         int `json:"cap_skipped"`          // steps skipped by the cap (on_cap: skip)
	QuietHoursDeferred int `json:"quiet_hours_deferred"` // steps moved past quiet hours
	// Completed journeys and those still Waiting at the end.
	Completed int `json:"completed"`
	Waiting   int `json:"waiting"`
}

// Report is a backtest's result.
type Report struct {
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Records int       `json:"records"` // replayed
	// InWindow counts the replayed records from Since on, the ones rules
	// saw; the others were replayed only as the profiles' history.
	InWindow int          `json:"in_window"`
	Rules    []RuleReport `json:"rules"`
}

// discard is the provider of a backtest: it accepts every message and
// sends nothing.
type discard struct{}

// Name implements connectors.Sender; "log" is the default provider.
func (discard) Name() string { return "log" }

// Send implements connectors.Sender by accepting and dropping m.
func (discard) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	return connectors.Result{Provider: "backtest"}, ctx.Err()
}

// Run replays src's history through set and reports per rule.
func Run(ctx context.Context, src storage.Store, set *rules.Set, opts Options) (Report, error) {
	if opts.Until.IsZero() {
		opts.Until = time.Now().UTC()
	}
	if opts.Rule != "" {
		r := set.Rule(opts.Rule)
		if r == nil {
			return Report{}, fmt.Errorf("backtest: no rule %q", opts.Rule)
		}
		one, err := rules.NewSet(r)
		if err != nil {
			return Report{}, fmt.Errorf("backtest: %w", err)
		}
		set = one
	}
	dir, err := os.MkdirTemp(opts.Dir, "nudge-backtest-")
	if err != nil {
		return Report{}, fmt.Errorf("backtest: %w", err)
	}
	defer os.RemoveAll(dir)

	start := opts.Since
	clk := clock.NewFake(time.Unix(0, 0).UTC())
	h, err := ruletest.NewHarness(ruletest.HarnessOptions{
		Dir: dir, Clock: clk, Sender: discard{}, Policies: opts.Policies,
		Stores: opts.Stores, Timezone: opts.Timezone, Logger: opts.Logger,
	})
	if err != nil {
		return Report{}, fmt.Errorf("backtest: %w", err)
	}
	defer h.Close()

	err = src.ListSuppressions(ctx, func(s storage.Suppression) error {
		if strings.Contains(s.Email, "@") { // forgotten addresses are kept only as hashes
			return h.Store.Suppress(ctx, s)
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("backtest: copy suppressions: %w", err)
	}

	rep := Report{Since: opts.Since, Until: opts.Until}
	active := false
	activate := func() {
		if !active {
			h.Engine.SetRules(set)
			active = true
		}
	}
	if start.IsZero() {
		activate()
	}
	err = src.ScanRecords(ctx, time.Time{}, opts.Until, func(r behavior.Record) error {
		at := r.At.UTC()
		if !active && !at.Before(start) {
			if _, err := h.RunUntil(ctx, start.Add(-time.Nanosecond)); err != nil {
				return err
			}
			activate()
		}
		if rep.Records == 0 && rep.Since.IsZero() {
			rep.Since = at
		}
		if _, err := h.RunUntil(ctx, at); err != nil {
			return err
		}
		if at.After(clk.Now()) {
			clk.Set(at)
		}
		r.ReceivedAt = time.Time{}
		if err := h.Ingest(ctx, r); err != nil {
			return err
		}
		rep.Records++
		if !at.Before(start) {
			rep.InWindow++
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("backtest: replay: %w", err)
	}
	activate()
	if _, err := h.RunUntil(ctx, opts.Until); err != nil {
		return Report{}, fmt.Errorf("backtest: replay: %w", err)
	}
	rep.Rules, err = tally(ctx, h.Store, set)
	if err != nil {
		return Report{}, err
	}
	return rep, nil
}

// tally counts what happened in the replay store.
func tally(ctx context.Context, st *storage.DB, set *rules.Set) ([]RuleReport, error) {
	by := map[string]*RuleReport{}
	for _, r := range set.Rules() {
		by[r.ID] = &RuleReport{Rule: r.ID, Sends: make([]int, len(r.Steps)), Held: make([]int, len(r.Steps))}
	}
	err := st.ScanProfiles(ctx, func(p storage.Profile) error {
		ds, err := st.Decisions(ctx, p.ID)
		if err != nil {
			return err
		}
		for _, d := range ds {
			rr := by[d.Rule]
			if rr == nil {
				continue
			}
			rr.Matched++
			switch {
			case d.Started:
			case strings.HasPrefix(d.Reason, "trigger.where"):
				rr.Filtered++
			case strings.HasPrefix(d.Reason, "limits.") || strings.HasPrefix(d.Reason, "already in journey"):
				rr.StoppedByLimit++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backtest: decisions: %w", err)
	}
	err = st.ScanJourneys(ctx, "", func(j storage.Journey) error {
		rr := by[j.Rule]
		if rr == nil {
			return nil
		}
		rr.Started++
		if j.Holdout {
			rr.HeldOut++
		}
		for _, t := range j.Trace {
			switch {
			case t.Action == "deferred" && strings.Contains(t.Detail, "frequency cap"):
				rr.CapDeferred++
			case t.Action == "deferred" && strings.Contains(t.Detail, "quiet"):
				rr.QuietHoursDeferred++
			case t.Action == "skipped" && strings.Contains(t.Detail, "frequency cap"):
				rr.CapSkipped++
			}
		}
		switch j.Status {
		case storage.JourneyWaiting:
			rr.Waiting++
		case storage.JourneyCompleted, storage.JourneyHeldOut:
			rr.Completed++
		case storage.JourneySuppressed:
			if strings.Contains(j.Reason, "consent") {
				rr.StoppedByConsent++
			} else {
				rr.StoppedBySuppress++
			}
		case storage.JourneyExited:
			switch {
			case strings.HasPrefix(j.Reason, "exit:"):
				rr.StoppedByExit++
			case strings.Contains(j.Reason, ".where"):
				rr.StoppedByWhere++
			default:
				rr.StoppedIrrelevant++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backtest: journeys: %w", err)
	}
	sends, err := st.ListSends(ctx, "", 0)
	if err != nil {
		return nil, fmt.Errorf("backtest: sends: %w", err)
	}
	for _, s := range sends {
		rr := by[s.Rule]
		if rr == nil || s.Step < 1 || s.Step > len(rr.Sends) {
			continue
		}
		switch s.Status {
		case storage.SendHeld:
			rr.Held[s.Step-1]++
		case storage.SendSkipped, storage.SendDead:
		default:
			rr.Sends[s.Step-1]++
		}
	}
	out := make([]RuleReport, 0, len(by))
	for _, r := range set.Rules() {
		out = append(out, *by[r.ID])
	}
	slices.SortFunc(out, func(a, b RuleReport) int { return strings.Compare(a.Rule, b.Rule) })
	return out, nil
}

// WriteText prints the report as a table.
func (r Report) WriteText(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "%d records from %s to %s went through the rules (nothing was sent); %d before them were replayed as history only\n\n",
		r.InWindow, stamp(r.Since), stamp(r.Until), r.Records-r.InWindow); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tMATCHED\tSTARTED\tHOLDOUT\tSENDS/STEP\tEXIT\tWHERE\tLIMIT\tCONSENT\tSUPPRESSED\tIRRELEVANT\tCAP\tQUIET\tWAITING")
	for _, rr := range r.Rules {
		steps := make([]string, len(rr.Sends))
		for i, n := range rr.Sends {
			steps[i] = fmt.Sprint(n)
		}
		capText := fmt.Sprint(rr.CapDeferred)
		if rr.CapSkipped > 0 {
			capText += fmt.Sprintf("+%d skipped", rr.CapSkipped)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n",
			rr.Rule, rr.Matched, rr.Started, rr.HeldOut, strings.Join(steps, "/"),
			rr.StoppedByExit, rr.StoppedByWhere+rr.Filtered, rr.StoppedByLimit, rr.StoppedByConsent,
			rr.StoppedBySuppress, rr.StoppedIrrelevant, capText, rr.QuietHoursDeferred, rr.Waiting)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nWHERE counts trigger.where and step where clauses that were false; CAP and QUIET count deferrals.")
	return err
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "the beginning"
	}
	return t.UTC().Format(time.RFC3339)
}
