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

// Plan is a dispatch decision together with the outbox write it implies,
// not yet made.
type Plan struct {
	Outcome
	// Send, when set, is the outbox entry to create in the same
	// transaction as the journey's update; SendJobs go with it.
	Send     *storage.Send
	SendJobs []storage.JobSpec
}

// Planner is a Dispatcher that hands its outbox write to the engine, so
// the send, the journey's update and the end of the step's job commit in
// one transaction, and that then delivers the send at once instead of
// through a job of its own.
type Planner interface {
	Dispatcher
	// Plan runs the gate and renders, writing nothing. Like Dispatch it
	// answers a step that already has a send from that send.
	Plan(ctx context.Context, s StepSend) (Plan, error)
	// Deliver hands a send the engine committed in the "sending" state to
	// its provider and records the result. It must not be called while
	// the profile is locked: the provider call may take seconds.
	// evaluateSent says whether a rule reacts to email_sent (as trigger or
	// exit); if none does, the email_sent record is stored without an
	// evaluation job, which would find nothing to do.
	Deliver(ctx context.Context, send storage.Send, evaluateSent bool) error
}

// BatchPlanner is a Planner that delivers many committed sends at once,
// recording their results in one write: the engine's batch of due steps
// (see Planner.Deliver for the rules).
type BatchPlanner interface {
	Planner
	// DeliverAll delivers sends, all committed in the "sending" state,
	// and returns one error per send, in order.
	DeliverAll(ctx context.Context, sends []storage.Send, evaluateSent bool) []error
}

// Observer sees every new record once the rules have evaluated it.
// Observe must be idempotent: a crash may replay a record.
type Observer interface {
	Observe(ctx context.Context, r behavior.Record, p storage.Profile) error
}
