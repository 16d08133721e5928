package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // customers' zones must resolve even on hosts without zoneinfo

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/keylock"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

// JobSend is the scheduler job kind that delivers one outbox entry; its
// unique key is "send:"+sendID.
const JobSend = "send"

// Defaults for Options.
const (
	DefaultProvider          = "log"
	DefaultMaxAttempts       = 8
	DefaultSendTimeout       = 30 * time.Second
	DefaultCapPer            = 24 * time.Hour
	DefaultAttributionWindow = 5 * 24 * time.Hour
	// recommendationCount is how many products CONTRACT §5 promises.
	recommendationCount = 4
)

// Options configure a Dispatcher.
type Options struct {
	// Policies are consent, frequency cap, quiet hours and attribution.
	Policies config.Policies
	// Timezone is the zone of customers whose own zone is unknown
	// (default UTC).
	Timezone *time.Location
	// From and ReplyTo address every message.
	From    connectors.Address
	ReplyTo *connectors.Address
	// PublicURL is the base of unsubscribe links, e.g. "https://mail.shop.com".
	PublicURL string
	// TokenSecret signs unsubscribe tokens; required.
	TokenSecret []byte
	// Stores give name, url and currency to template data; the first is
	// the default for records without a store.
	Stores []config.Store
	// LinkHosts are the hosts, besides the stores' own (and their
	// subdomains), that item and recommendation links in emails may
	// point to: the storefront origins of tracking.allowed_origins.
	// Anyone holding the public write key can post a product with any
	// URL; a link elsewhere becomes the store's URL (see safeLink).
	LinkHosts []string
	// DefaultProvider is email.provider: "log" (default), "sendgrid" or
	// "mailgun"; a rule's send.provider overrides it.
	DefaultProvider string
	// UnsubscribeGroup is a SendGrid ASM group id (0 = none).
	UnsubscribeGroup int
	// Recommender supplies recommendations; nil gives an empty list.
	Recommender Recommender
	// Clock (default clock.Real) and Logger (default slog.Default()).
	Clock  clock.Clock
	Logger *slog.Logger
	// MaxAttempts is how many provider calls one send may take before it
	// goes to dead (default 8).
	MaxAttempts int
	// SendTimeout bounds one provider call (default 30 s).
	SendTimeout time.Duration
	// BackoffFunc is the delay before retry number attempt (1-based);
	// default 30 s doubling to 1 h with ±20 % jitter. A provider's
	// Retry-After wins when it is longer.
	BackoffFunc func(attempt int) time.Duration
	// RulePriorityFunc, when set, reports a rule's priority so that a
	// lower-priority step leaves the last cap slot to a higher-priority
	// step due within the same minute.
	RulePriorityFunc func(rule string) (int, bool)
}

// Recommender supplies up to n products for a profile.
type Recommender interface {
	Recommend(ctx context.Context, profileID string, n int) ([]storage.Product, error)
}

// Dispatcher gates, renders, enqueues and delivers step sends, serves the
// unsubscribe pages and attributes orders. It is safe for concurrent use.
type Dispatcher struct {
	store     storage.Store
	senders   map[string]connectors.Sender
	opts      Options
	quiet     quietWindow
	templates *templateCache
	// locks serialize read-modify-write of one send between the delivery
	// handler and engagement updates (per send id); a batch of
	// deliveries holds one per send (see lockAll).
	locks keylock.Locks
	zones sync.Map // zone name → *time.Location (nil for invalid names)
	// storeHosts are the configured stores' hosts, whose subdomains links
	// may point to too; linkHosts the exact hosts of Options.LinkHosts
	// (see safeLink). Both are fixed at New.
	storeHosts []string
	linkHosts  map[string]bool
	sched      atomic.Pointer[scheduler.Scheduler]
	// rendered holds messages from their rendering to their delivery.
	rendered rendered
}

// Compile-time checks of the seams the engine uses.
var (
	_ dispatch.Dispatcher = (*Dispatcher)(nil)
	_ dispatch.Observer   = (*Dispatcher)(nil)
)

// New returns a Dispatcher over store with the given senders by provider
// name. The default provider must have a sender.
func New(store storage.Store, senders map[string]connectors.Sender, opts Options) (*Dispatcher, error) {
	if store == nil {
		return nil, errors.New("sending: nil store")
	}
	if len(opts.TokenSecret) == 0 {
		return nil, errors.New("sending: empty token secret: unsubscribe links must be signed")
	}
	if opts.DefaultProvider == "" {
		opts.DefaultProvider = DefaultProvider
	}
	if senders[opts.DefaultProvider] == nil {
		return nil, fmt.Errorf("sending: %w %q", ErrNoSender, opts.DefaultProvider)
	}
	if opts.Timezone == nil {
		opts.Timezone = time.UTC
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.BackoffFunc == nil {
		opts.BackoffFunc = DefaultBackoff
	}
	if opts.Policies.FrequencyCap.Max > 0 && opts.Policies.FrequencyCap.Per <= 0 {
		opts.Policies.FrequencyCap.Per = config.Duration(DefaultCapPer)
	}
	if opts.Policies.AttributionWindow <= 0 {
		opts.Policies.AttributionWindow = config.Duration(DefaultAttributionWindow)
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	q, err := parseQuietHours(opts.Policies.QuietHours)
	if err != nil {
		return nil, fmt.Errorf("sending: %w", err)
	}
	s := make(map[string]connectors.Sender, len(senders))
	for name, snd := range senders {
		if snd != nil {
			s[name] = snd
		}
	}
	d := &Dispatcher{store: store, senders: s, opts: opts, quiet: q, templates: newTemplateCache(), linkHosts: map[string]bool{}}
	for _, st := range opts.Stores {
		if u, err := url.Parse(st.URL); err == nil && u.Hostname() != "" {
			d.storeHosts = append(d.storeHosts, strings.ToLower(u.Hostname()))
		}
	}
	for _, h := range opts.LinkHosts {
		d.linkHosts[strings.ToLower(h)] = true
	}
	return d, nil
}

// SendID is the outbox id of a journey step: deterministic, so a retried
// Dispatch never creates a second entry, and led by the journey id's first
// half (its start time, see journey.JourneyID; behavior.FollowID), so the
// sends of journeys started together, whose steps fall due together, share
// pages of the store instead of dirtying one each.
func SendID(journeyID string, step int) string {
	return behavior.FollowID(journeyID, "send", journeyID, strconv.Itoa(step))
}

// sendPayload is a JobSend job's payload.
type sendPayload struct {
	SendID string `json:"send_id"`
}

func (d *Dispatcher) now() time.Time { return d.opts.Clock.Now().UTC() }

// lockAll locks every send in ids (see keylock.Locks.LockAll) and
// returns the unlock.
func (d *Dispatcher) lockAll(ids []string) func() {
	return d.locks.LockAll(ids)
}

// modify applies fn to the stored send under its lock and writes it back
// when fn reports a change. It returns the send as stored.
func (d *Dispatcher) modify(ctx context.Context, id string, fn func(s *storage.Send) (bool, error)) (storage.Send, error) {
	return d.modifyJobs(ctx, id, func(s *storage.Send) (bool, []storage.JobSpec, error) {
		changed, err := fn(s)
		return changed, nil, err
	})
}

// modifyJobs is modify where fn also names jobs to enqueue atomically
// with the change.
func (d *Dispatcher) modifyJobs(ctx context.Context, id string, fn func(s *storage.Send) (bool, []storage.JobSpec, error)) (storage.Send, error) {
	return d.modifyFull(ctx, id, func(s *storage.Send) (bool, []storage.JobSpec, *storage.Ingest, error) {
		changed, jobs, err := fn(s)
		return changed, jobs, nil, err
	})
}

// modifyFull is modify where fn also names jobs to enqueue and records to
// append atomically with the change (a send marked sent with its
// email_sent record).
func (d *Dispatcher) modifyFull(ctx context.Context, id string, fn func(s *storage.Send) (bool, []storage.JobSpec, *storage.Ingest, error)) (storage.Send, error) {
	defer d.locks.Lock(id)()
	s, err := d.store.Send(ctx, id)
	if err != nil {
		return storage.Send{}, err
	}
	changed, jobs, in, err := fn(&s)
	if err != nil || !changed {
		return s, err
	}
	s.UpdatedAt = d.now()
	if in != nil {
		err = d.store.FinishSend(ctx, s, *in, jobs...)
	} else {
		err = d.store.UpdateSend(ctx, s, jobs...)
	}
	if err != nil {
		return storage.Send{}, err
	}
	return s, nil
}

// wake tells a registered scheduler that a job was enqueued, since
// CreateSend writes jobs behind its back.
func (d *Dispatcher) wake() {
	if s := d.sched.Load(); s != nil {
		s.Wake()
	}
}

// provider resolves a step's provider name.
func (d *Dispatcher) provider(spec dispatch.SendSpec) string {
	if spec.Provider != "" {
		return spec.Provider
	}
	return d.opts.DefaultProvider
}

// Dispatch runs the gate for one due step and, when it passes, writes the
// outbox entry and its send job. It is idempotent per journey step: a
// second call returns the first call's outcome. With s.DryRun it only
// evaluates the gate.
func (d *Dispatcher) Dispatch(ctx context.Context, s dispatch.StepSend) (dispatch.Outcome, error) {
	p, err := d.plan(ctx, s, false)
	if err != nil || p.Send == nil || s.DryRun {
		return p.Outcome, err
	}
	stored, created, err := d.store.CreateSend(ctx, *p.Send, p.SendJobs...)
	if err != nil {
		return dispatch.Outcome{}, fmt.Errorf("sending: create send %s: %w", p.Send.ID, err)
	}
	if !created {
		return outcomeOf(stored), nil
	}
	if len(p.SendJobs) > 0 {
		d.wake()
	}
	return p.Outcome, nil
}

// Plan is Dispatch without the write: the engine commits the send with
// the journey and then calls Deliver. A send that passes the gate is
// planned in the "sending" state (attempt 1) with no job, since Deliver
// follows the commit at once; a crash in between leaves it "sending",
// which Recover turns into "unknown" at the next start — the provider may
// have it, so it is never sent again.
func (d *Dispatcher) Plan(ctx context.Context, s dispatch.StepSend) (dispatch.Plan, error) {
	return d.plan(ctx, s, true)
}

func (d *Dispatcher) plan(ctx context.Context, s dispatch.StepSend, inline bool) (dispatch.Plan, error) {
	now := s.Now
	if now.IsZero() {
		now = d.now()
	}
	id := SendID(s.Journey.ID, s.Step)
	if !s.DryRun {
		existing, err := d.store.Send(ctx, id)
		switch {
		case err == nil:
			return dispatch.Plan{Outcome: outcomeOf(existing)}, nil
		case !errors.Is(err, storage.ErrNotFound):
			return dispatch.Plan{}, fmt.Errorf("sending: dispatch %s: %w", id, err)
		}
	}
	out, err := d.gate(ctx, s, now)
	if err != nil {
		return dispatch.Plan{}, fmt.Errorf("sending: gate %s step %d: %w", s.Rule, s.Step, err)
	}
	if out.Action != dispatch.Queued && out.Action != dispatch.Held {
		return dispatch.Plan{Outcome: out}, nil
	}
	out.SendID = id
	if s.DryRun {
		return dispatch.Plan{Outcome: out}, nil
	}
	send := storage.Send{
		ID:        id,
		JourneyID: s.Journey.ID,
		Rule:      s.Rule,
		Step:      s.Step,
		ProfileID: s.Profile.ID,
		Email:     recipient(s.Profile),
		Provider:  d.provider(s.Send),
		Priority:  s.Priority,
		CreatedAt: now.UTC(),
		UpdatedAt: now.UTC(),
	}
	var jobs []storage.JobSpec
	if out.Action == dispatch.Held {
		send.Status, send.Reason = storage.SendHeld, out.Reason
	} else {
		send.Status = storage.SendPending
		if err := d.prepare(ctx, s, &send); err != nil {
			// A template or provider problem will not fix itself by
			// retrying the step: keep it visible in the dead letters.
			send.Status, send.Reason, send.LastError = storage.SendDead, "not rendered", err.Error()
			out = dispatch.Outcome{Action: dispatch.Skipped, Reason: "cannot render: " + err.Error(), SendID: id}
			d.opts.Logger.Error("send not rendered", "send_id", id, "rule", s.Rule, "step", s.Step, "error", err)
		} else if inline {
			send.Status, send.Attempts = storage.SendSending, 1
		} else {
			jobs = append(jobs, d.sendJob(id, "send:"+id, now))
		}
	}
	return dispatch.Plan{Outcome: out, Send: &send, SendJobs: jobs}, nil
}

// sendJob is the job that delivers (or retries) one send.
func (d *Dispatcher) sendJob(id, uniqueKey string, due time.Time) storage.JobSpec {
	payload, _ := jsonMarshal(sendPayload{SendID: id})
	return storage.JobSpec{
		Kind: JobSend, UniqueKey: uniqueKey, Payload: payload, DueAt: due,
		// Our own attempt count decides dead; the job's limit is only a
		// backstop.
		MaxAttempts: d.opts.MaxAttempts + 2,
	}
}

// prepare renders the message into send.Message.
func (d *Dispatcher) prepare(ctx context.Context, s dispatch.StepSend, send *storage.Send) error {
	if d.senders[send.Provider] == nil {
		return fmt.Errorf("%w %q", ErrNoSender, send.Provider)
	}
	msg, err := d.render(ctx, s, send.ID)
	if err != nil {
		return err
	}
	raw, err := jsonMarshal(msg)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	send.Message = raw
	d.rendered.put(send.ID, raw, msg)
	return nil
}

// outcomeOf answers a repeated Dispatch from the stored send.
func outcomeOf(s storage.Send) dispatch.Outcome {
	switch s.Status {
	case storage.SendHeld:
		return dispatch.Outcome{Action: dispatch.Held, Reason: s.Reason, SendID: s.ID}
	case storage.SendSkipped:
		return dispatch.Outcome{Action: dispatch.Skipped, Reason: s.Reason, SendID: s.ID}
	case storage.SendDead:
		if s.Reason == "not rendered" {
			return dispatch.Outcome{Action: dispatch.Skipped, Reason: "cannot render: " + s.LastError, SendID: s.ID}
		}
	}
	return dispatch.Outcome{Action: dispatch.Queued, Reason: "already in the outbox (" + s.Status + ")", SendID: s.ID}
}

// recipient is the address a profile is mailed at.
func recipient(p storage.Profile) string {
	if e := behavior.NormalizeEmail(p.Email); e != "" {
		return e
	}
	for _, id := range p.Identities {
		if id.Type == behavior.IdentEmail && id.Value != "" {
			return behavior.NormalizeEmail(id.Value)
		}
	}
	return ""
}
