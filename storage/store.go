// Package storage holds nudge's durable state: behavior records, unified
// customer profiles and their identities, consent, the product catalog,
// durable jobs, journeys, the outbox and the suppression list.
//
// Store is the seam for other backends: no bbolt type appears in it. The
// bbolt implementation is Open. Every mutation is one transaction; reads
// return copies that stay valid after the call.
package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/geo"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound reports a missing record, profile, job, journey or send.
	ErrNotFound = errors.New("storage: not found")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("storage: closed")
	// ErrInvalid reports a value the store refuses to hold (no kind, no
	// identity, a bad id).
	ErrInvalid = errors.New("storage: invalid")
	// ErrConflict reports a unique key that is already taken.
	ErrConflict = errors.New("storage: conflict")
)

// Store is everything nudge keeps. Implementations are safe for
// concurrent use.
type Store interface {
	Records
	Profiles
	Catalog
	Jobs
	Journeys
	Outbox
	Suppressions
	Insights // insights.go: the saved fit, batched score writes
	// Stats counts what the store holds, for metrics and the admin page.
	Stats(ctx context.Context) (Stats, error)
	// Backup writes a consistent snapshot of the whole store to w while
	// it stays open for reads and writes, returning the bytes written.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	// Forget erases a person everywhere: profile, identities, records,
	// raw deliveries, journeys, pending jobs and sends. The suppression
	// entry is kept only as a hash, so a forgotten address is still
	// never mailed. It returns ErrNotFound for an unknown profile.
	Forget(ctx context.Context, profileID string) error
	// Prune removes records, raw deliveries and the messages of settled
	// sends older than cutoff (see DB.Prune), returning how many records
	// went.
	Prune(ctx context.Context, cutoff time.Time) (int, error)
	// Close waits for pending group commits and closes the file.
	Close() error
}

// Delivery is one raw inbound request, kept so a connector fix can
// re-normalize history and so a 200 always means "persisted".
type Delivery struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Store      string    `json:"store,omitempty"`
	Topic      string    `json:"topic,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	Body       []byte    `json:"body"`
}

// TimeOrderedDeliveryID is the id under which a delivery that carries
// records is stored: its arrival time (ns, big endian) then the first
// half of contentID, as 32 hex digits like a content id. Deliveries are
// keyed by id, and a content hash put every webhook's header in a random
// leaf of the deliveries bucket, one more page rewritten and flushed per
// webhook; ids that grow with time append at the bucket's end, where a
// group commit's webhooks share a leaf (BenchmarkAppendShopifyOrder64: 6.1
// → 5.1 pages per order). A redelivery gets a new id, which costs nothing:
// its records are duplicates, so it is not stored again. A delivery
// without records (an ignored topic) keeps its content id, which is what
// dedupes its redeliveries.
func TimeOrderedDeliveryID(receivedAt time.Time, contentID string) string {
	return behavior.OrderedID(receivedAt, contentID)
}

// Ingest is one atomic write from a connector: the raw delivery (optional)
// and the records normalized from it.
type Ingest struct {
	Delivery *Delivery
	Records  []behavior.Record
	// EvaluateSince, when set, enqueues no evaluate job for records that
	// occurred before it. Imports of history set it to the journey
	// engine's trigger age (24 h): older records could start no journey,
	// and a million pending evaluations would slow live webhooks for
	// nothing; insights learn history at their next refit. The sender
	// sets it just after an email_sent record when no rule reacts to
	// email_sent.
	EvaluateSince time.Time
}

// AppendResult says what an Ingest changed.
type AppendResult struct {
	// New are the records stored for the first time, including records the
	// store derived (price_dropped, back_in_stock) from catalog changes.
	New []behavior.Record
	// Duplicates counts records whose id was already stored.
	Duplicates int
	// Profiles maps each new record's id to the profile it belongs to
	// (absent for records without identity, such as catalog updates).
	Profiles map[string]string
}

// Records is the behavior history.
type Records interface {
	// Append stores the records of one ingest in one transaction: it
	// dedupes by record id, resolves identities to a profile (creating or
	// merging profiles), updates profile facts, consent, suppressions and
	// the catalog, derives price_dropped / back_in_stock records, and
	// enqueues one JobEvaluate job per new record. Concurrent callers
	// share fsyncs (group commit). A nil error means everything is durable.
	Append(ctx context.Context, in Ingest) (AppendResult, error)
	// Record returns one record by id.
	Record(ctx context.Context, id string) (behavior.Record, error)
	// RecordsByProfile returns a profile's records in time order.
	RecordsByProfile(ctx context.Context, profileID string, q RecordQuery) ([]behavior.Record, error)
	// ScanRecords calls fn for every record with since <= At < until (zero
	// until means no bound) in occurred-at order, stopping at fn's first error.
	ScanRecords(ctx context.Context, since, until time.Time, fn func(behavior.Record) error) error
	// Delivery returns one raw delivery.
	Delivery(ctx context.Context, id string) (Delivery, error)
}

// RecordQuery filters RecordsByProfile.
type RecordQuery struct {
	Since, Until time.Time       // zero = unbounded; Until is exclusive
	Kinds        []behavior.Kind // empty = all
	Limit        int             // 0 = no limit; with Newest, the newest Limit
	Newest       bool            // return newest first
	// Brief returns records holding only ID, Kind, Source, Store, At,
	// ReceivedAt, Value, Currency, Items, Seconds and Refs: what product,
	// order and engagement history needs (recommendations read a profile's
	// last 500 records for every email, insights its whole history for
	// every order or visit), decoded at a fraction of a whole record's cost.
	Brief bool
}

// ConsentState is a profile's current email-marketing consent with its
// provenance.
type ConsentState struct {
	State         string    `json:"state"` // granted | denied | pending | "" (unknown)
	Source        string    `json:"source,omitempty"`
	At            time.Time `json:"at,omitzero"`
	RecordID      string    `json:"record_id,omitempty"`
	Level         string    `json:"level,omitempty"`
	CollectedFrom string    `json:"collected_from,omitempty"`
	Text          string    `json:"text,omitempty"`
}

// Profile is one person, unified across sources.
type Profile struct {
	ID         string              `json:"id"`
	Email      string              `json:"email,omitempty"` // primary address (first seen)
	Identities []behavior.Identity `json:"identities"`
	behavior.Person
	Consent   ConsentState `json:"consent"`
	FirstSeen time.Time    `json:"first_seen"`
	LastSeen  time.Time    `json:"last_seen"`
	// Counts and LastAt are per record kind.
	Counts      map[behavior.Kind]int       `json:"counts,omitempty"`
	LastAt      map[behavior.Kind]time.Time `json:"last_at,omitempty"`
	OrdersCount int                         `json:"orders_count"`
	TotalSpent  int64                       `json:"total_spent"` // minor units, net of refunds
	Currency    string                      `json:"currency,omitempty"`
	// Scores and Segment are written by insights.
	Scores    map[string]float64 `json:"scores,omitempty"`
	Segment   string             `json:"segment,omitempty"`
	ScoredAt  time.Time          `json:"scored_at,omitzero"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// Zone is the IANA zone the profile's quiet hours and send hours use: the
// one its browser or a source stated (Timezone), else the one its
// address implies (geo.Zone), else "" (the shop's timezone applies).
func (p *Profile) Zone() string {
	if p.Timezone != "" {
		return p.Timezone
	}
	return geo.Zone(p.Country, p.Region)
}

// Profiles are the unified customers.
type Profiles interface {
	// Profile returns a profile by id. Ids of profiles merged into another
	// resolve to the surviving profile.
	Profile(ctx context.Context, id string) (Profile, error)
	// ProfileByIdentity resolves one identity.
	ProfileByIdentity(ctx context.Context, id behavior.Identity) (Profile, error)
	// ProfileByEmail is ProfileByIdentity for an email address.
	ProfileByEmail(ctx context.Context, email string) (Profile, error)
	// ScanProfiles calls fn for every live profile.
	ScanProfiles(ctx context.Context, fn func(Profile) error) error
	// SetScores replaces a profile's insight scores and segment.
	SetScores(ctx context.Context, profileID string, scores map[string]float64, segment string, at time.Time) error
	// SetConsent records a consent change made outside a record (admin,
	// unsubscribe page); it is kept with its provenance.
	SetConsent(ctx context.Context, profileID string, c ConsentState) error
	// ProfilesByProduct returns the ids of profiles with records of the
	// given kinds naming productID at or after since (for back-in-stock
	// and price-drop fan-out).
	ProfilesByProduct(ctx context.Context, productID string, kinds []behavior.Kind, since time.Time) ([]string, error)
}

// Product is what the catalog knows of one product.
type Product struct {
	ProductID string    `json:"product_id"`
	Store     string    `json:"store,omitempty"`
	Title     string    `json:"title,omitempty"`
	URL       string    `json:"url,omitempty"`
	ImageURL  string    `json:"image_url,omitempty"`
	Category  string    `json:"category,omitempty"`
	Price     int64     `json:"price"` // minor units; lowest variant price
	Currency  string    `json:"currency,omitempty"`
	Available *int64    `json:"available,omitempty"` // units in stock; nil = unknown
	UpdatedAt time.Time `json:"updated_at"`
	// Unverified is true while everything known of the product came from
	// the tracking API, whose write key is public in the storefront: the
	// store has not named it in a signed webhook or import yet.
	// Recommendations skip such products, so nobody can make the shop
	// recommend an invented product to its customers.
	Unverified bool `json:"unverified,omitempty"`
}

// InStock reports whether the product is known to be available (unknown
// stock counts as available).
func (p Product) InStock() bool { return p.Available == nil || *p.Available > 0 }

// Catalog is every product seen in catalog updates, carts and orders.
type Catalog interface {
	Product(ctx context.Context, productID string) (Product, error)
	ScanProducts(ctx context.Context, fn func(Product) error) error
}

// JobState follows river: scheduled → running → completed | retryable |
// cancelled | discarded.
type JobState string

// Job states.
const (
	JobScheduled JobState = "scheduled"
	JobRunning   JobState = "running"
	JobCompleted JobState = "completed"
	JobRetryable JobState = "retryable"
	JobCancelled JobState = "cancelled"
	JobDiscarded JobState = "discarded"
)

// JobEvaluate is the kind of job Append enqueues for each new record; its
// payload is EvaluatePayload.
const JobEvaluate = "evaluate"

// EvaluatePayload is the payload of a JobEvaluate job.
type EvaluatePayload struct {
	RecordID  string `json:"record_id"`
	ProfileID string `json:"profile_id,omitempty"`
}

// JobSpec asks for a job to be enqueued.
type JobSpec struct {
	Kind string
	// UniqueKey, when set, makes the enqueue a no-op if a job with the same
	// key exists in any state (so a retried handler cannot double-enqueue).
	UniqueKey   string
	Payload     []byte
	DueAt       time.Time
	MaxAttempts int // 0 = default (25)
}

// Job is a durable unit of work.
type Job struct {
	ID          uint64    `json:"id"`
	Kind        string    `json:"kind"`
	UniqueKey   string    `json:"unique_key,omitempty"`
	State       JobState  `json:"state"`
	Payload     []byte    `json:"payload,omitempty"`
	DueAt       time.Time `json:"due_at"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	LastError   string    `json:"last_error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// JobOutcome is how a job run ended.
type JobOutcome struct {
	State JobState  // completed, retryable (with DueAt), cancelled or discarded
	DueAt time.Time // next attempt, for retryable
	Error string
}

// Jobs is the durable job queue under the scheduler.
type Jobs interface {
	// EnqueueJobs adds jobs in one transaction, skipping those whose
	// UniqueKey exists; it returns how many were added.
	EnqueueJobs(ctx context.Context, specs ...JobSpec) (int, error)
	// ClaimDueJobs moves up to limit scheduled or retryable jobs due at or
	// before now to running, incrementing Attempts, and returns them.
	ClaimDueJobs(ctx context.Context, now time.Time, limit int) ([]Job, error)
	// ClaimDueJobsAhead is ClaimDueJobs for a claim made before workers
	// are free to run its jobs: its write waits a few milliseconds for
	// another write to share a commit with, rather than pay one alone.
	ClaimDueJobsAhead(ctx context.Context, now time.Time, limit int) ([]Job, error)
	// FinishJob records the outcome of a running job.
	FinishJob(ctx context.Context, id uint64, out JobOutcome) error
	// NextJobDue returns the earliest due time of a scheduled or retryable job.
	NextJobDue(ctx context.Context) (time.Time, bool, error)
	// RecoverJobs returns jobs left running (by a crash) to retryable, due now.
	RecoverJobs(ctx context.Context, now time.Time) (int, error)
	// Job returns one job.
	Job(ctx context.Context, id uint64) (Job, error)
	// CancelJobs cancels every scheduled or retryable job whose unique key
	// starts with prefix, returning how many.
	CancelJobs(ctx context.Context, uniqueKeyPrefix string) (int, error)
	// CountJobs counts jobs by state.
	CountJobs(ctx context.Context) (map[JobState]int, error)
}

// Journey statuses.
const (
	JourneyWaiting    = "waiting"    // a step is due later
	JourneyExited     = "exited"     // an exit event, a failed step.where or a removed rule ended it
	JourneyHeldOut    = "held_out"   // in the control group: recorded, never sent
	JourneySuppressed = "suppressed" // the policy gate stopped it (consent, suppression)
	JourneyCompleted  = "completed"  // every step ran
)

// TraceEntry is one line of a journey's explain trace.
type TraceEntry struct {
	At     time.Time `json:"at"`
	Step   int       `json:"step"` // 1-based; 0 for the trigger
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
}

// Journey is one profile's run through one rule.
type Journey struct {
	ID            string       `json:"id"`
	Rule          string       `json:"rule"`
	ProfileID     string       `json:"profile_id"`
	TriggerRecord string       `json:"trigger_record"`
	Step          int          `json:"step"` // 1-based step that is next (or last run once ended)
	Status        string       `json:"status"`
	Reason        string       `json:"reason,omitempty"`
	Holdout       bool         `json:"holdout,omitempty"`
	StartedAt     time.Time    `json:"started_at"`
	DueAt         time.Time    `json:"due_at,omitzero"`
	UpdatedAt     time.Time    `json:"updated_at"`
	Trace         []TraceEntry `json:"trace,omitempty"`
}

// Active reports whether the journey still has a step to run.
func (j Journey) Active() bool { return j.Status == JourneyWaiting }

// Journeys are rule runs, with their explain traces.
type Journeys interface {
	// PutJourney creates or replaces a journey and enqueues jobs in the
	// same transaction.
	PutJourney(ctx context.Context, j Journey, jobs ...JobSpec) error
	// Journey returns one journey.
	Journey(ctx context.Context, id string) (Journey, error)
	// JourneysByProfile returns a profile's journeys, oldest first.
	JourneysByProfile(ctx context.Context, profileID string) ([]Journey, error)
	// JourneysByProfileUntraced is JourneysByProfile with the journeys
	// that have ended read without their trace (for deciding, not for
	// showing: the active ones are whole).
	JourneysByProfileUntraced(ctx context.Context, profileID string) ([]Journey, error)
	// ScanJourneys calls fn for every journey of a rule ("" = all rules).
	ScanJourneys(ctx context.Context, rule string, fn func(Journey) error) error
	// AppendDecision adds an explain entry for a trigger match that did not
	// start a journey (filtered, re-entry limit …), kept per profile.
	AppendDecision(ctx context.Context, profileID string, d Decision) error
	// Decisions returns a profile's recorded decisions, oldest first.
	Decisions(ctx context.Context, profileID string) ([]Decision, error)
}

// Decision explains why a trigger match did or did not start a journey.
type Decision struct {
	At        time.Time `json:"at"`
	Rule      string    `json:"rule"`
	RecordID  string    `json:"record_id"`
	Started   bool      `json:"started"`
	JourneyID string    `json:"journey_id,omitempty"`
	Reason    string    `json:"reason"`
}

// Send statuses (the outbox).
const (
	SendPending  = "pending"
	SendSending  = "sending"
	SendSent     = "sent"
	SendRetrying = "retrying"
	SendDead     = "dead"
	SendUnknown  = "unknown" // the request may have left before a crash; never repeated
	SendHeld     = "held"    // holdout: recorded, never sent
	SendSkipped  = "skipped" // the policy gate stopped it at send time
)

// SendStatuses lists every send status, for filters that must reject a
// misspelt one rather than answer with nothing.
func SendStatuses() []string {
	return []string{SendPending, SendSending, SendSent, SendRetrying, SendDead, SendUnknown, SendHeld, SendSkipped}
}

// Send is one outbox entry: one message for one journey step.
type Send struct {
	ID                string            `json:"id"` // unique per journey step
	JourneyID         string            `json:"journey_id"`
	Rule              string            `json:"rule"`
	Step              int               `json:"step"`
	ProfileID         string            `json:"profile_id"`
	Email             string            `json:"email"`
	Provider          string            `json:"provider"`
	Status            string            `json:"status"`
	Reason            string            `json:"reason,omitempty"`
	Priority          int               `json:"priority,omitempty"`
	Message           MessageJSON       `json:"message,omitempty"` // the rendered message
	ProviderMessageID string            `json:"provider_message_id,omitempty"`
	Attempts          int               `json:"attempts"`
	LastError         string            `json:"last_error,omitempty"`
	Engagement        map[string]int    `json:"engagement,omitempty"` // delivered/opened/clicked … counts
	Meta              map[string]string `json:"meta,omitempty"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
	SentAt            time.Time         `json:"sent_at,omitzero"`
}

// MessageJSON is a rendered message as JSON, kept in a send as it is:
// inline JSON in the store and in the API. As a plain []byte it was
// base64-encoded, a third larger, in a value written twice per step (sent
// as "sending", then as "sent"). Sends stored that way still decode.
type MessageJSON []byte

// MarshalJSON writes m as it is, or as base64 (what UnmarshalJSON reads
// back to the same bytes) should it not be valid JSON.
func (m MessageJSON) MarshalJSON() ([]byte, error) {
	if len(m) == 0 {
		return []byte("null"), nil
	}
	if !json.Valid(m) {
		return json.Marshal([]byte(m))
	}
	return m, nil
}

// UnmarshalJSON reads inline JSON, or a base64 string as the store held
// sends before MessageJSON.
func (m *MessageJSON) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*m = nil
	case len(b) > 0 && b[0] == '"':
		var raw []byte
		if err := json.Unmarshal(b, &raw); err != nil {
			return fmt.Errorf("send message: %w", err)
		}
		*m = raw
	default:
		*m = append((*m)[:0], b...)
	}
	return nil
}

// Outbox holds sends.
type Outbox interface {
	// CreateSend adds s unless a send with its id exists, enqueuing jobs in
	// the same transaction; it returns the stored send and whether it was
	// created.
	CreateSend(ctx context.Context, s Send, jobs ...JobSpec) (Send, bool, error)
	// UpdateSend replaces a send (by id) and enqueues jobs atomically.
	UpdateSend(ctx context.Context, s Send, jobs ...JobSpec) error
	// CommitStep writes what a journey step decided (journey, jobs, a new
	// send, the end of the step's job) in one transaction, returning the
	// send as stored and whether it was created.
	CommitStep(ctx context.Context, c StepCommit) (Send, bool, error)
	// CommitSteps is CommitStep for a batch of steps of distinct
	// journeys, in one transaction: all or none.
	CommitSteps(ctx context.Context, cs []StepCommit) ([]StepResult, error)
	// FinishSend replaces a send, appends records and enqueues jobs in one
	// transaction (a send marked sent with its email_sent record). A send
	// without a message keeps its stored one.
	FinishSend(ctx context.Context, s Send, in Ingest, jobs ...JobSpec) error
	// FinishSends is FinishSend for many sends in one transaction: all or
	// none.
	FinishSends(ctx context.Context, fs []SendFinish) error
	// Send returns one send.
	Send(ctx context.Context, id string) (Send, error)
	// SendStates returns the sends with these ids in one read, in order,
	// without their messages; a missing one is ErrNotFound.
	SendStates(ctx context.Context, ids []string) ([]Send, error)
	// SendByProviderMessageID finds a send by the provider's message id.
	SendByProviderMessageID(ctx context.Context, providerID string) (Send, error)
	// SendsByProfile returns a profile's sends, oldest first.
	SendsByProfile(ctx context.Context, profileID string) ([]Send, error)
	// SendsByProfileSince returns a profile's sends created at or after
	// since, oldest first, reading none of the older ones.
	SendsByProfileSince(ctx context.Context, profileID string, since time.Time) ([]Send, error)
	// ListSends returns sends with the given status ("" = all), newest
	// first, at most limit (0 = no limit).
	ListSends(ctx context.Context, status string, limit int) ([]Send, error)
}

// Suppression is an address that must not be mailed.
type Suppression struct {
	Email    string    `json:"email"`
	Reason   string    `json:"reason"` // behavior.Suppress*
	Source   string    `json:"source,omitempty"`
	RecordID string    `json:"record_id,omitempty"`
	At       time.Time `json:"at"`
}

// Suppressions is the do-not-mail list. Append maintains it from records
// (behavior.Record.Suppresses); these calls serve manual changes.
type Suppressions interface {
	Suppress(ctx context.Context, s Suppression) error
	Unsuppress(ctx context.Context, email string) error
	// Suppressed returns the entry for an address, if any.
	Suppressed(ctx context.Context, email string) (Suppression, bool, error)
	ListSuppressions(ctx context.Context, fn func(Suppression) error) error
}

// Stats counts what the store holds.
type Stats struct {
	Records      int   `json:"records"`
	Profiles     int   `json:"profiles"`
	Products     int   `json:"products"`
	Journeys     int   `json:"journeys"`
	Sends        int   `json:"sends"`
	Suppressions int   `json:"suppressions"`
	Deliveries   int   `json:"deliveries"`
	FileBytes    int64 `json:"file_bytes"`
}
