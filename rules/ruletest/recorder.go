package ruletest

import (
	"context"
	"sync"
	"time"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors"
)

// Recorded is one message a Recorder accepted, with the clock time.
type Recorded struct {
	At       time.Time
	Provider string
	Message  connectors.Message
}

// Recorder is an in-memory email provider: a connectors.Sender that
// accepts every message and remembers it with the time on its clock.
// Rule tests, backtests and engine tests use it in place of an ESP. It is
// safe for concurrent use and may outlive the store it was used with, so
// a test can count sends across a crash and restart.
type Recorder struct {
	clock clock.Clock
	name  string
	// log and mu are shared by the recorders As returns.
	log *[]Recorded
	mu  *sync.Mutex
}

// NewRecorder returns a recorder named "log".
func NewRecorder(c clock.Clock) *Recorder {
	return &Recorder{clock: c, name: "log", log: &[]Recorded{}, mu: &sync.Mutex{}}
}

// As returns a sender with another provider name sharing this recorder's
// log, so one recorder can stand in for log, sendgrid and mailgun.
func (r *Recorder) As(name string) *Recorder {
	return &Recorder{clock: r.clock, name: name, log: r.log, mu: r.mu}
}

// Senders returns the recorder under every provider name a rule may use.
func (r *Recorder) Senders() map[string]connectors.Sender {
	return map[string]connectors.Sender{"log": r.As("log"), "sendgrid": r.As("sendgrid"), "mailgun": r.As("mailgun")}
}

// Name implements connectors.Sender.
func (r *Recorder) Name() string { return r.name }

// Send implements connectors.Sender: it records and accepts.
func (r *Recorder) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Result{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.log = append(*r.log, Recorded{At: r.clock.Now().UTC(), Provider: r.name, Message: m})
	return connectors.Result{Provider: r.name, ProviderMessageID: "rec-" + m.SendID}, nil
}

// Messages returns what was sent so far, in order.
func (r *Recorder) Messages() []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Recorded(nil), (*r.log)...)
}
