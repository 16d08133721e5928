// Package rules reads, validates and compiles nudge's YAML rule files
// (CONTRACT §5): strict decoding with every error reported at once as
// `file:line:col: rule "id": message`, durations with d and w, and
// expr-lang expressions compiled at load against the typed Env, so that a
// misspelt field fails `nudge check` instead of silently never matching.
//
// The journey engine (package journey) runs the compiled rules.
package rules

import (
	"slices"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// Providers a rule may name in send.provider.
var providers = []string{"log", "sendgrid", "mailgun"}

// On-cap behaviours: what a step does when the frequency cap is full.
const (
	OnCapWait = "wait" // default: try again when a slot frees
	OnCapSkip = "skip" // give up this step and go on
)

// Rule is one compiled rule file.
type Rule struct {
	ID          string
	Description string
	// File, Line and Col locate the rule's id in its file.
	File      string
	Line, Col int

	Trigger Trigger
	Exits   []Exit
	Steps   []Step
	Limits  Limits
	// Priority decides which of two sends due at once wins the cap; higher wins.
	Priority int
	// Holdout is the share of journeys kept as a control group, 0 ≤ h < 1.
	Holdout float64
	// OnCap is OnCapWait or OnCapSkip.
	OnCap string
}

// Trigger starts a journey.
type Trigger struct {
	Event behavior.Kind
	Where *Expr // nil = always
}

// Exit ends a journey when a matching record arrives after the trigger.
type Exit struct {
	Event behavior.Kind
	Where *Expr // nil = always
}

// Step is one wait-then-send.
type Step struct {
	// Wait is how long after the previous step (or the trigger) it is due.
	Wait time.Duration
	// BestHour moves the due time to the profile's best send hour within
	// the following 24 h, when one is known.
	BestHour bool
	// Where is re-evaluated at due time against the fresh profile; false
	// ends the journey.
	Where *Expr
	Send  Send
}

// Send is a step's message.
type Send struct {
	Provider string // "" = email.provider
	Template string // provider template id
	Subject  string // Go template text for local templates
	HTMLFile string // absolute path
	TextFile string // absolute path
	Data     []DataField
}

// DataField is one send.data entry, evaluated at send time.
type DataField struct {
	Key  string
	Expr *Expr
}

// Limits restrict how often a profile runs a rule.
type Limits struct {
	// ReenterAfter is how long after a journey starts before the same
	// profile may start this rule again; 0 = as soon as no journey of the
	// rule is active.
	ReenterAfter time.Duration
}

// Set is a loaded, validated rule set. It is immutable, so the engine can
// swap sets atomically on reload.
type Set struct {
	rules  []*Rule
	byID   map[string]*Rule
	byKind map[behavior.Kind][]*Rule
	exits  map[behavior.Kind]bool
	files  []string
}

// newSet indexes rules, which must have distinct ids.
func newSet(rs []*Rule, files []string) *Set {
	s := &Set{byID: map[string]*Rule{}, byKind: map[behavior.Kind][]*Rule{}, exits: map[behavior.Kind]bool{}, files: files}
	s.rules = append(s.rules, rs...)
	// Higher priority first, so when two rules start from one record the
	// more important journey is created (and explained) first.
	slices.SortStableFunc(s.rules, func(a, b *Rule) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, r := range s.rules {
		s.byID[r.ID] = r
		s.byKind[r.Trigger.Event] = append(s.byKind[r.Trigger.Event], r)
		for _, x := range r.Exits {
			s.exits[x.Event] = true
		}
	}
	return s
}

// Rules returns the rules, highest priority first, then by id.
func (s *Set) Rules() []*Rule {
	if s == nil {
		return nil
	}
	return slices.Clone(s.rules)
}

// Rule returns the rule with the id, or nil.
func (s *Set) Rule(id string) *Rule {
	if s == nil {
		return nil
	}
	return s.byID[id]
}

// Triggered returns the rules whose trigger is kind, highest priority
// first. The slice is shared; do not modify it.
func (s *Set) Triggered(kind behavior.Kind) []*Rule {
	if s == nil {
		return nil
	}
	return s.byKind[kind]
}

// HasExit reports whether any rule exits on kind, so records of other
// kinds need not read their profile's journeys.
func (s *Set) HasExit(kind behavior.Kind) bool {
	if s == nil {
		return false
	}
	return s.exits[kind]
}

// Len is the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Files are the rule files the set was loaded from.
func (s *Set) Files() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.files)
}

// ExitsOn reports whether any exit of the rule listens for kind.
func (r *Rule) ExitsOn(kind behavior.Kind) bool {
	for _, e := range r.Exits {
		if e.Event == kind {
			return true
		}
	}
	return false
}
