// Package dispatch is the seam between the journey engine (rules) and
// sending: when a journey step is due the engine hands a StepSend to a
// Dispatcher, which applies the policy gate, writes the outbox entry and
// answers what the engine should do with the journey. Observers see every
// new record after the rules have (attribution, engagement, insights).
package dispatch

import (
	"context"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// SendSpec is a rule step's send block, resolved: either a provider
// template or local template files (absolute paths).
type SendSpec struct {
	Provider string // "" = email.provider
	Template string // provider template id / name
	Subject  string // Go template text, for local templates
	HTMLFile string
	TextFile string
	// Data is the step's send.data, already evaluated.
	Data map[string]any
}

// StepSend asks for one journey step's message.
type StepSend struct {
	Journey  storage.Journey
	Rule     string
	Step     int // 1-based
	Priority int
	OnCap    string // "wait" (default) | "skip"
	Send     SendSpec
	Trigger  behavior.Record
	Profile  storage.Profile
	Now      time.Time
	// DryRun evaluates the gate without writing or sending (backtest).
	DryRun bool
}

// Action is what the engine does with the journey after a dispatch.
type Action string

// Actions.
const (
	// Queued: the message is in the outbox; go on to the next step.
	Queued Action = "queued"
	// Held: holdout journey; recorded as held, never sent; go on.
	Held Action = "held"
	// Deferred: try this step again at Until (quiet hours, cap with wait).
	Deferred Action = "deferred"
	// Skipped: this step will not send (cap with skip); go on.
	Skipped Action = "skipped"
	// Stopped: end the journey (no consent, suppressed, no longer
	// relevant: cart bought, out of stock, price back up).
	Stopped Action = "stopped"
)

// Outcome is a dispatch decision, recorded on the journey's trace.
type Outcome struct {
	Action Action
	Until  time.Time // for Deferred
	Reason string    // e.g. "no consent", "quiet hours until 08:00 Europe/Paris"
	SendID string    // for Queued and Held
}

// Dispatcher gates and enqueues step sends. Dispatch must be idempotent
// for the same journey step (the engine may retry after a crash).
type Dispatcher interface {
	Dispatch(ctx context.Context, s StepSend) (Outcome, error)
}

// Observer sees every new record once the rules have evaluated it.
// Observe must be idempotent: a crash may replay a record.
type Observer interface {
	Observe(ctx context.Context, r behavior.Record, p storage.Profile) error
}
