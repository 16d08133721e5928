package journey

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nudge-email/nudge/storage"
)

// Explanation is why a profile's journeys started or did not, and what
// each step did: every trigger match (storage.Decision) and every
// journey with its trace. Its JSON form is the body of
// GET /api/v1/profiles/{email}/explain.
type Explanation struct {
	ProfileID string             `json:"profile_id"`
	Email     string             `json:"email,omitempty"`
	Rule      string             `json:"rule,omitempty"` // the filter, if any
	Decisions []storage.Decision `json:"decisions"`
	Journeys  []storage.Journey  `json:"journeys"`
}

// Explain gathers the explanation for a profile, optionally for one rule
// only. It returns storage.ErrNotFound (wrapped) for an unknown profile.
func Explain(ctx context.Context, store storage.Store, profileID, rule string) (Explanation, error) {
	p, err := store.Profile(ctx, profileID)
	if err != nil {
		return Explanation{}, fmt.Errorf("journey: explain %s: %w", profileID, err)
	}
	x := Explanation{ProfileID: p.ID, Email: p.Email, Rule: rule, Decisions: []storage.Decision{}, Journeys: []storage.Journey{}}
	ds, err := store.Decisions(ctx, p.ID)
	if err != nil {
		return Explanation{}, fmt.Errorf("journey: explain %s: %w", profileID, err)
	}
	for _, d := range ds {
		if rule == "" || d.Rule == rule {
			x.Decisions = append(x.Decisions, d)
		}
	}
	js, err := store.JourneysByProfile(ctx, p.ID)
	if err != nil {
		return Explanation{}, fmt.Errorf("journey: explain %s: %w", profileID, err)
	}
	for _, j := range js {
		if rule == "" || j.Rule == rule {
			x.Journeys = append(x.Journeys, j)
		}
	}
	return x, nil
}

// ExplainEmail is Explain for an email address, as the CLI and the API
// take it.
func ExplainEmail(ctx context.Context, store storage.Store, email, rule string) (Explanation, error) {
	p, err := store.ProfileByEmail(ctx, email)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return Explanation{}, fmt.Errorf("journey: explain: no profile for that address: %w", err)
		}
		return Explanation{}, fmt.Errorf("journey: explain: %w", err)
	}
	return Explain(ctx, store, p.ID, rule)
}

// WriteText prints the explanation for people (nudge explain).
func (x Explanation) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	who := x.ProfileID
	if x.Email != "" {
		who = x.Email + " (profile " + x.ProfileID + ")"
	}
	fmt.Fprintf(b, "%s\n", who)
	if x.Rule != "" {
		fmt.Fprintf(b, "rule %s only\n", x.Rule)
	}
	fmt.Fprintf(b, "\ntrigger matches:\n")
	if len(x.Decisions) == 0 {
		fmt.Fprintf(b, "  none\n")
	}
	for _, d := range x.Decisions {
		what := "not started: " + d.Reason
		if d.Started {
			what = "started journey " + d.JourneyID
			if d.Reason != "" && d.Reason != ReasonStarted {
				what += " (" + d.Reason + ")"
			}
		}
		fmt.Fprintf(b, "  %s  %-20s record %s  %s\n", stamp(d.At), d.Rule, d.RecordID, what)
	}
	fmt.Fprintf(b, "\njourneys:\n")
	if len(x.Journeys) == 0 {
		fmt.Fprintf(b, "  none\n")
	}
	for _, j := range x.Journeys {
		status := j.Status
		if j.Reason != "" {
			status += " (" + j.Reason + ")"
		}
		if j.Active() {
			status += fmt.Sprintf(", step %d due %s", j.Step, stamp(j.DueAt))
		}
		hold := ""
		if j.Holdout {
			hold = ", holdout"
		}
		fmt.Fprintf(b, "  %s  %s  started %s%s: %s\n", j.ID, j.Rule, stamp(j.StartedAt), hold, status)
		for _, t := range j.Trace {
			step := "trigger"
			if t.Step > 0 {
				step = fmt.Sprintf("step %d", t.Step)
			}
			line := t.Action
			if t.Detail != "" {
				line += ": " + t.Detail
			}
			fmt.Fprintf(b, "    %s  %-7s  %s\n", stamp(t.At), step, line)
		}
	}
	return b.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
