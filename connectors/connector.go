// Package connectors defines the boundaries between nudge and the outside:
// a Receiver turns one verified webhook into behavior records, a Sender
// hands one rendered message to an email provider. Each source lives in
// its own subpackage.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// Receiver errors; the HTTP layer maps them to status codes.
var (
	// ErrSignature: missing or bad signature → 401, nothing stored.
	ErrSignature = errors.New("bad or missing signature")
	// ErrStale: a well-formed signature outside the time tolerance → 400.
	ErrStale = errors.New("signature timestamp outside tolerance")
	// ErrMalformed: a verified body that cannot be parsed → 400.
	ErrMalformed = errors.New("malformed payload")
	// ErrIgnored: a verified topic nudge does not use → 200, nothing stored.
	ErrIgnored = errors.New("topic ignored")
)

// Receiver verifies and normalizes one source's webhooks.
//
// Verify runs first, on the exact bytes received, and compares secrets in
// constant time; Normalize is pure (no I/O), never panics on any input, and
// returns records whose ids are derived from the source's own event ids so
// a redelivery yields the same ids. Implementations are safe for
// concurrent use.
type Receiver interface {
	// Name is the source name used in routes, config and Record.Source.
	Name() string
	// Verify checks the request's signature at time now.
	Verify(h http.Header, body []byte, now time.Time) error
	// Normalize turns a verified body into records. A topic nudge does not
	// use returns ErrIgnored; an unparseable body wraps ErrMalformed.
	Normalize(h http.Header, body []byte) ([]behavior.Record, error)
}

// Pinger is implemented by receivers whose provider sends an unsigned
// liveness ping (WooCommerce's webhook_id=N on creation) that must be
// answered 200 without verifying or storing anything.
type Pinger interface {
	IsPing(h http.Header, body []byte) bool
}

// Topicer is implemented by receivers that can name a delivery's topic
// from its headers, for logs, metrics and the stored raw delivery.
type Topicer interface {
	Topic(h http.Header) string
}

// Address is an email address with an optional display name.
type Address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// Message is one fully personalized email for one recipient. Either
// TemplateID (a provider-side template fed TemplateData) or Subject with
// HTML and/or Text (rendered locally) is set.
type Message struct {
	SendID       string            `json:"send_id"` // ours; travels in custom args / user variables
	To           Address           `json:"to"`
	From         Address           `json:"from"`
	ReplyTo      *Address          `json:"reply_to,omitempty"`
	Subject      string            `json:"subject,omitempty"`
	HTML         string            `json:"html,omitempty"`
	Text         string            `json:"text,omitempty"`
	TemplateID   string            `json:"template_id,omitempty"`
	TemplateData map[string]any    `json:"template_data,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"` // List-Unsubscribe, List-Unsubscribe-Post …
	// Tags are categories (SendGrid) or o:tag (Mailgun): rule and step.
	Tags []string `json:"tags,omitempty"`
	// Args are custom args (SendGrid) or user variables (Mailgun); they
	// always include "nudge_send_id".
	Args map[string]string `json:"args,omitempty"`
	// UnsubscribeGroup is a SendGrid ASM group id; 0 = none.
	UnsubscribeGroup int `json:"unsubscribe_group,omitempty"`
}

// ArgSendID is the custom-arg / user-variable key that carries our send id
// out with a message and back in engagement webhooks.
const ArgSendID = "nudge_send_id"

// Result is a provider's acceptance of a message.
type Result struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
}

// Sender errors.
var (
	// ErrPermanent marks a rejection that retrying cannot fix (4xx other
	// than 429): the send goes to dead.
	ErrPermanent = errors.New("permanent send failure")
)

// RetryableError is a transient failure (429, 5xx, timeout). After, when
// non-zero, is how long the provider asked us to wait (Retry-After,
// X-RateLimit-Reset).
type RetryableError struct {
	After time.Duration
	Err   error
}

func (e *RetryableError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("retryable (provider asked to wait %s): %v", e.After, e.Err)
	}
	return fmt.Sprintf("retryable: %v", e.Err)
}

func (e *RetryableError) Unwrap() error { return e.Err }

// Sender hands messages to an email provider. Send must honour ctx's
// deadline, return errors wrapping ErrPermanent for permanent rejections
// and *RetryableError for transient ones; any other error is treated as
// transient. Implementations are safe for concurrent use.
type Sender interface {
	Name() string
	Send(ctx context.Context, m Message) (Result, error)
}

// BatchSender is a Sender that takes many messages in one call: a batch
// of due steps hands its messages over together. SendBatch returns one
// result and one error per message, in order, with Send's meanings; an
// error for the whole call goes in every slot.
type BatchSender interface {
	Sender
	SendBatch(ctx context.Context, ms []Message) ([]Result, []error)
}

// ProviderCalls is how many calls an email provider's client keeps warm
// connections for: the scheduler's 128 workers can have as many sends
// mid-call at once, the calls of a batch of due steps all start together,
// and Go's default transport keeps only 2 idle connections per host, so
// each batch would open (and TLS-handshake) most of its connections anew.
const ProviderCalls = 128

// ProviderTransport returns the HTTP transport for an email provider's
// API: Go's default transport (proxy from the environment, timeouts,
// HTTP/2) keeping up to ProviderCalls idle connections to the provider.
func ProviderTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = ProviderCalls
	t.MaxIdleConns = 2 * ProviderCalls
	return t
}

// Stale is the error of a signature timestamp outside the tolerance: age
// is now minus the timestamp, negative for one in the future, and the
// message says which.
func Stale(source string, ts int64, age, tolerance time.Duration) error {
	when := age.Round(time.Second).String() + " old"
	if age < 0 {
		when = (-age).Round(time.Second).String() + " in the future"
	}
	return fmt.Errorf("%s: verify: timestamp %d is %s, tolerance %s: %w", source, ts, when, tolerance, ErrStale)
}
