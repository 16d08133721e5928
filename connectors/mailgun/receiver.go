package mailgun

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
)

// DefaultWebhookTolerance is how far a signature's timestamp may be from
// the server's clock, either way, when ReceiverConfig.Tolerance is zero.
// Mailgun advises rejecting old timestamps without naming a window; ten
// minutes absorbs clock skew, and a replay inside it is harmless because
// records dedupe on the event id.
const DefaultWebhookTolerance = 10 * time.Minute

// mgSource is the receiver's name and the Source of its records.
const mgSource = "mailgun"

// User variables that travel with our sends and come back in every event's
// user-variables. ArgSendID is connectors.ArgSendID.
const (
	ArgRule = "nudge_rule"
	ArgStep = "nudge_step"
)

// Record.Attrs keys set by the receiver.
const (
	// AttrBot holds client-info.bot of an open or click, e.g. "apple" for a
	// privacy proxy's prefetch.
	AttrBot = "bot"
	// AttrDelayedBounce is true on a permanent failure Mailgun learned of
	// after first reporting the message delivered.
	AttrDelayedBounce = "delayed_bounce"
	// AttrTags holds the message's tags as a []string.
	AttrTags = "tags"
)

// ReceiverConfig configures the webhook receiver.
type ReceiverConfig struct {
	// SigningKey is the HTTP webhook signing key from Mailgun's
	// "Webhooks" settings (not the API key). Required.
	SigningKey string
	// Tolerance bounds the distance between the signature timestamp and
	// the clock; zero or negative means DefaultWebhookTolerance.
	Tolerance time.Duration
}

// Receiver verifies and normalizes Mailgun webhooks. It is safe for
// concurrent use.
type Receiver struct {
	key       []byte
	tolerance time.Duration

	// Mailgun's HMAC covers only timestamp and token, not event-data, so
	// a captured delivery could be replayed with forged events while its
	// timestamp is fresh. Remembering which event-data each token came
	// with (for twice the tolerance) rejects that, as Mailgun's docs
	// advise, while a true redelivery (same token, same data) passes.
	mu     sync.Mutex
	tokens map[string]tokenUse
}

type tokenUse struct {
	data [sha256.Size]byte
	exp  time.Time
}

// NewReceiver returns a Receiver for cfg, or an error when no signing key
// is configured: the webhook route must not be mounted without one.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if strings.TrimSpace(cfg.SigningKey) == "" {
		return nil, errors.New("mailgun: webhook signing key not configured; copy the HTTP webhook signing key from Mailgun's webhook settings (the API key does not verify webhooks)")
	}
	r := &Receiver{key: []byte(strings.TrimSpace(cfg.SigningKey)), tolerance: cfg.Tolerance, tokens: map[string]tokenUse{}}
	if r.tolerance <= 0 {
		r.tolerance = DefaultWebhookTolerance
	}
	return r, nil
}

// Name returns "mailgun".
func (r *Receiver) Name() string { return mgSource }

// Sign returns the signature Mailgun puts beside timestamp and token:
// hex HMAC-SHA256 of timestamp+token under the webhook signing key.
func Sign(key, timestamp, token string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(timestamp))
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks the signature object inside the body at time now.
//
// A body that is not a JSON object cannot be checked at all and is
// connectors.ErrMalformed (400); a JSON body with a missing, incomplete or
// wrong signature is connectors.ErrSignature (401). The timestamp is
// checked before the HMAC, so a stale delivery is connectors.ErrStale
// whatever its signature.
func (r *Receiver) Verify(_ http.Header, body []byte, now time.Time) error {
	var top mgObject
	if err := json.Unmarshal(body, &top); err != nil {
		return fmt.Errorf("mailgun: verify: body is not a JSON object: %v: %w", err, connectors.ErrMalformed)
	}
	sig := top.obj("signature")
	ts, token, hexSig := sig.text("timestamp"), sig.text("token"), sig.text("signature")
	if ts == "" || token == "" || hexSig == "" {
		return fmt.Errorf("mailgun: verify: missing signature timestamp, token or signature: %w", connectors.ErrSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 || sec > mgMaxUnix {
		return fmt.Errorf("mailgun: verify: bad signature timestamp %.40q: %w", ts, connectors.ErrSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > r.tolerance || d < -r.tolerance {
		return connectors.Stale("mailgun", sec, d, r.tolerance)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("mailgun: verify: signature is not hex: %w", connectors.ErrSignature)
	}
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(ts))
	m.Write([]byte(token))
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("mailgun: verify: signature does not match: %w", connectors.ErrSignature)
	}
	var env struct {
		EventData json.RawMessage `json:"event-data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("mailgun: verify: %v: %w", err, connectors.ErrMalformed)
	}
	canon, err := canonicalJSON(env.EventData)
	if err != nil {
		return fmt.Errorf("mailgun: verify: event-data: %v: %w", err, connectors.ErrMalformed)
	}
	if !r.remember(token, sha256.Sum256(canon), now) {
		return fmt.Errorf("mailgun: verify: token already used with different event data (replay): %w", connectors.ErrSignature)
	}
	return nil
}

// canonicalJSON re-encodes a JSON value with sorted keys and exact
// numbers, so the same event compares equal however it was formatted.
func canonicalJSON(raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// maxTokens bounds the replay cache; only correctly signed deliveries
// enter it, so it grows with real traffic, not with an attacker's.
const maxTokens = 200_000

// remember records token's event-data hash and reports whether the token
// is new or came with the same data before.
func (r *Receiver) remember(token string, data [sha256.Size]byte, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.tokens[token]; ok && now.Before(u.exp) {
		return u.data == data
	}
	if len(r.tokens) >= maxTokens {
		for k, u := range r.tokens {
			if !now.Before(u.exp) {
				delete(r.tokens, k)
			}
		}
		if len(r.tokens) >= maxTokens {
			// Still full of live tokens: drop an arbitrary one rather than
			// grow without bound; a replay of it would need its exact
			// token within the tolerance.
			for k := range r.tokens {
				delete(r.tokens, k)
				break
			}
		}
	}
	r.tokens[token] = tokenUse{data: data, exp: now.Add(2 * r.tolerance)}
	return true
}

// mgMaxUnix bounds timestamps to year 9999 so time arithmetic stays sane.
const mgMaxUnix = 253402300799

var mgKinds = map[string]behavior.Kind{
	"delivered":    behavior.EmailDelivered,
	"failed":       behavior.EmailBounced, // or EmailDeferred, by severity
	"opened":       behavior.EmailOpened,
	"clicked":      behavior.EmailClicked,
	"unsubscribed": behavior.Unsubscribed,
	"complained":   behavior.SpamReported,
}

// Normalize turns a verified webhook's event-data into one record.
//
// Mapping: delivered → email_delivered; failed with severity "permanent" →
// email_bounced with behavior.AttrPermanent true (and the reason, e.g.
// "suppress-bounce", in behavior.AttrReason); any other failure →
// email_deferred; opened → email_opened, marked behavior.RefMachineOpen
// when client-info names a bot (Mailgun's bot field, e.g. "apple" or
// "gmail" for proxy prefetches, or client-type "robot"); clicked →
// email_clicked with the URL; unsubscribed → unsubscribed; complained →
// spam_reported. accepted, rejected, stored and list events are
// connectors.ErrIgnored.
//
// The record id derives from event-data.id and its timestamp, since Mailgun
// ids are unique within a day only. behavior.RefMessageID is the
// message-id header without angle brackets, the form the events carry;
// the Messages API returns the same id with brackets, so strip them before
// comparing. The send id in user-variables (behavior.RefSendID) is the
// primary link to our send.
func (r *Receiver) Normalize(_ http.Header, body []byte) ([]behavior.Record, error) {
	var p struct {
		EventData json.RawMessage `json:"event-data"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("mailgun: normalize: body is not a JSON object: %v: %w", err, connectors.ErrMalformed)
	}
	raw := bytes.TrimSpace(p.EventData)
	var ev mgObject
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &ev) != nil {
		return nil, fmt.Errorf("mailgun: normalize: no event-data object: %w", connectors.ErrMalformed)
	}
	name := ev.text("event")
	if name == "" {
		return nil, fmt.Errorf("mailgun: normalize: event-data has no event: %w", connectors.ErrMalformed)
	}
	kind, ok := mgKinds[name]
	if !ok {
		return nil, fmt.Errorf("mailgun: normalize: event %.40q: %w", name, connectors.ErrIgnored)
	}
	email := strings.TrimSpace(ev.text("recipient"))
	if email == "" {
		return nil, fmt.Errorf("mailgun: normalize: %s event has no recipient: %w", name, connectors.ErrMalformed)
	}
	ts := ev.text("timestamp")
	at, err := parseEventTime(ts)
	if err != nil {
		return nil, fmt.Errorf("mailgun: normalize: %s event: %w", name, err)
	}
	id := ev.text("id")
	rec := behavior.Record{
		ID:     behavior.DeriveID(mgSource, id, ts),
		Kind:   kind,
		Source: mgSource,
		At:     at,
		Email:  email,
		Attrs:  map[string]any{behavior.AttrTopic: name},
	}
	if id == "" {
		// Without Mailgun's id the event's own bytes are the only stable
		// identity; a redelivery carries them unchanged.
		rec.ID = behavior.DeriveID(mgSource, "event-bytes", string(raw))
	}
	rec.SetRef(behavior.RefEventID, id)
	vars := ev.obj("user-variables")
	rec.SetRef(behavior.RefSendID, vars.text(connectors.ArgSendID))
	rec.SetRef(behavior.RefRuleID, vars.text(ArgRule))
	rec.SetRef(behavior.RefStep, vars.text(ArgStep))
	rec.SetRef(behavior.RefMessageID, strings.Trim(strings.TrimSpace(ev.obj("message").obj("headers").text("message-id")), "<>"))
	if tags := ev.texts("tags"); len(tags) > 0 {
		rec.Attrs[AttrTags] = tags
	}
	status := ev.obj("delivery-status")
	switch name {
	case "failed":
		severity := ev.text("severity")
		if severity == "permanent" {
			rec.Attrs[behavior.AttrPermanent] = true
		} else {
			rec.Kind = behavior.EmailDeferred
		}
		mgSetAttr(&rec, "severity", severity)
		mgSetAttr(&rec, behavior.AttrReason, ev.text("reason"))
		mgSetAttr(&rec, "description", firstNonEmpty(status.text("description"), status.text("message")))
		mgSetAttr(&rec, "code", status.text("code"))
		if ev.obj("flags").text("is-delayed-bounce") == "true" {
			rec.Attrs[AttrDelayedBounce] = true
		}
	case "delivered":
		mgSetAttr(&rec, "code", status.text("code"))
	case "opened", "clicked":
		ci := ev.obj("client-info")
		bot := ci.text("bot")
		if name == "opened" && (bot != "" || ci.text("client-type") == "robot") {
			rec.SetRef(behavior.RefMachineOpen, "true")
		}
		mgSetAttr(&rec, AttrBot, bot)
		mgSetAttr(&rec, "client_type", ci.text("client-type"))
		mgSetAttr(&rec, "device_type", ci.text("device-type"))
		rec.URL = ev.text("url")
	}
	return []behavior.Record{rec}, nil
}

// parseEventTime reads Mailgun's float seconds ("1377075564.094891") by
// their decimal digits, so the microseconds survive exactly where a
// float64 would round them.
func parseEventTime(s string) (time.Time, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	sec, err := strconv.ParseUint(whole, 10, 64)
	if err != nil || sec == 0 || sec > mgMaxUnix || hasFrac && (frac == "" || strings.Trim(frac, "0123456789") != "") {
		return time.Time{}, fmt.Errorf("bad timestamp %.40q: %w", s, connectors.ErrMalformed)
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	var nsec int64
	if frac != "" {
		nsec, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return time.Unix(int64(sec), nsec).UTC(), nil
}

func mgSetAttr(rec *behavior.Record, key, value string) {
	if value != "" {
		rec.Attrs[key] = value
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// mgObject is a JSON object read field by field and leniently: a field of
// an unexpected type reads as empty instead of failing the event, since
// Mailgun's payloads vary by event, account type and age.
type mgObject map[string]json.RawMessage

// obj returns the object at key, or nil.
func (o mgObject) obj(key string) mgObject {
	var m mgObject
	if v := bytes.TrimSpace(o[key]); len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &m) == nil {
		return m
	}
	return nil
}

// text returns the scalar at key as text (see mgText), or "".
func (o mgObject) text(key string) string {
	var t mgText
	if json.Unmarshal(o[key], &t) != nil {
		return ""
	}
	return string(t)
}

// texts returns the non-empty scalars of the array (or single scalar) at
// key.
func (o mgObject) texts(key string) []string {
	v := bytes.TrimSpace(o[key])
	if len(v) == 0 {
		return nil
	}
	if v[0] != '[' {
		if s := o.text(key); s != "" {
			return []string{s}
		}
		return nil
	}
	var items []mgText
	if json.Unmarshal(v, &items) != nil {
		return nil
	}
	var out []string
	for _, it := range items {
		if it != "" {
			out = append(out, string(it))
		}
	}
	return out
}

// mgText is a JSON scalar read as text: strings as they are, numbers and
// booleans in their JSON spelling; null, objects and arrays read as "".
type mgText string

// UnmarshalJSON never fails on well-formed JSON.
func (t *mgText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*t = ""
	switch {
	case len(b) == 0:
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = mgText(s)
	case b[0] == '{' || b[0] == '[' || string(b) == "null":
	default:
		*t = mgText(b)
	}
	return nil
}
