package sendgrid

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
)

// Event Webhook signature headers (PROTOCOLS §4.3).
const (
	// WebhookSignatureHeader carries the base64 ASN.1 DER ECDSA signature.
	WebhookSignatureHeader = eventwebhook.VerificationHTTPHeader
	// WebhookTimestampHeader carries the signing time in unix seconds.
	WebhookTimestampHeader = eventwebhook.TimestampHTTPHeader
)

// DefaultWebhookTolerance is how far the signature timestamp may be from
// the server's clock, either way, when ReceiverConfig.Tolerance is zero.
// SendGrid documents no window of its own. Ten minutes absorbs clock skew
// and queueing on SendGrid's side; a replay inside it is harmless because
// every event dedupes on sg_event_id.
const DefaultWebhookTolerance = 10 * time.Minute

// whSource is the receiver's name and the Source of its records.
const whSource = "sendgrid"

// Record.Refs and Record.Attrs keys set by the receiver.
const (
	// RefSGMessageID holds the full sg_message_id of an event
	// ("<X-Message-Id>.<filter…>"); behavior.RefMessageID holds only the
	// X-Message-Id part, the id the Mail Send API returned for the send in
	// its X-Message-Id header, so the two sides join on equal strings.
	RefSGMessageID = "sg_message_id"
	// AttrASMGroupID holds the unsubscribe group of group_(un|re)subscribe.
	AttrASMGroupID = "asm_group_id"
	// AttrCategories holds the event's categories as a []string.
	AttrCategories = "categories"
)

// Custom args that travel with our sends and come back as top-level keys
// of every event (PROTOCOLS §4.2). ArgSendID is connectors.ArgSendID.
const (
	ArgRule = "nudge_rule"
	ArgStep = "nudge_step"
)

// whPermanentDropReasons are the dropped reasons that condemn the address
// itself rather than the message.
var whPermanentDropReasons = map[string]bool{
	"Bounced Address":        true,
	"Unsubscribed Address":   true,
	"Spam Reporting Address": true,
	"Invalid":                true,
}

// ReceiverConfig configures the Event Webhook receiver.
type ReceiverConfig struct {
	// PublicKey is the webhook's verification key as SendGrid shows it:
	// base64 of the DER SubjectPublicKeyInfo of a P-256 key. A PEM
	// "PUBLIC KEY" block is accepted too. Required.
	PublicKey string
	// Tolerance bounds the distance between the signature timestamp and
	// the clock; zero or negative means DefaultWebhookTolerance.
	Tolerance time.Duration
}

// Receiver verifies and normalizes SendGrid Event Webhook batches. It is
// safe for concurrent use.
type Receiver struct {
	pub       *ecdsa.PublicKey
	tolerance time.Duration
}

// NewReceiver returns a Receiver for cfg, or an error when cfg has no
// usable public key: the webhook route must not be mounted without one.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	b64, err := whPublicKeyDER(cfg.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: webhook public key: %w", err)
	}
	// The helper type-asserts without checking and would panic on an RSA
	// or Ed25519 key; whPublicKeyDER has already made sure it is P-256.
	pub, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(b64)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: webhook public key: %w", err)
	}
	r := &Receiver{pub: pub, tolerance: cfg.Tolerance}
	if r.tolerance <= 0 {
		r.tolerance = DefaultWebhookTolerance
	}
	return r, nil
}

// whPublicKeyDER checks that s holds a P-256 public key and returns it as
// the base64 DER string eventwebhook expects.
func whPublicKeyDER(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("not configured; copy it from SendGrid's Event Webhook settings (signed webhooks must be enabled)")
	}
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil {
			return "", errors.New("invalid PEM block")
		}
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), "")); err != nil {
			return "", fmt.Errorf("not base64: %w", err)
		}
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return "", fmt.Errorf("not a DER public key: %w", err)
	}
	ec, ok := key.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return "", fmt.Errorf("a %T, want an ECDSA P-256 key", key)
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// PublicKeyBase64 encodes pub the way SendGrid shows webhook keys, for
// development setups that sign their own sample events.
func PublicKeyBase64(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("sendgrid: encode public key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// ParsePrivateKey reads a P-256 private key, PEM ("EC PRIVATE KEY" or
// "PRIVATE KEY") or base64 DER (SEC 1 or PKCS #8), for development setups
// that sign their own sample events with SignWithKey.
func ParsePrivateKey(s string) (*ecdsa.PrivateKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil {
			return nil, errors.New("sendgrid: private key: invalid PEM block")
		}
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), "")); err != nil {
			return nil, fmt.Errorf("sendgrid: private key: not base64: %w", err)
		}
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		if k.Curve != elliptic.P256() {
			return nil, errors.New("sendgrid: private key: not a P-256 key")
		}
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: private key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("sendgrid: private key: a %T, want an ECDSA P-256 key", k)
	}
	return ec, nil
}

// SignWithKey signs body at timestamp ts (unix seconds, as sent in
// WebhookTimestampHeader) the way SendGrid does, returning the
// WebhookSignatureHeader value. SendGrid keeps the private key of real
// webhooks; this serves tests and `nudge trigger` against a server
// configured with the matching public key.
func SignWithKey(priv *ecdsa.PrivateKey, body []byte, ts string) (string, error) {
	if priv == nil {
		return "", errors.New("sendgrid: sign: no private key")
	}
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(body)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, h.Sum(nil))
	if err != nil {
		return "", fmt.Errorf("sendgrid: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Name returns "sendgrid".
func (r *Receiver) Name() string { return whSource }

// Verify checks a batch's ECDSA signature over timestamp||body at time now.
// The timestamp is checked first, as for Stripe: a stale delivery is
// connectors.ErrStale whatever its signature. A missing or unparseable
// header is connectors.ErrSignature.
func (r *Receiver) Verify(h http.Header, body []byte, now time.Time) error {
	sig, ts := h.Get(WebhookSignatureHeader), h.Get(WebhookTimestampHeader)
	if sig == "" || ts == "" {
		return fmt.Errorf("sendgrid: verify: missing %s or %s header: %w", WebhookSignatureHeader, WebhookTimestampHeader, connectors.ErrSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 || sec > whMaxUnix {
		return fmt.Errorf("sendgrid: verify: bad timestamp %.40q: %w", ts, connectors.ErrSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > r.tolerance || d < -r.tolerance {
		return connectors.Stale("sendgrid", sec, d, r.tolerance)
	}
	ok, err := eventwebhook.VerifySignature(r.pub, body, sig, ts)
	if err != nil {
		return fmt.Errorf("sendgrid: verify: unreadable signature: %v: %w", err, connectors.ErrSignature)
	}
	if !ok {
		return fmt.Errorf("sendgrid: verify: signature does not match: %w", connectors.ErrSignature)
	}
	return nil
}

// whMaxUnix bounds timestamps to year 9999 so time arithmetic stays sane.
const whMaxUnix = 253402300799

// Normalize turns a verified batch into records; see NormalizeBatch. Events
// that cannot be read are dropped here; use NormalizeBatch to log them.
func (r *Receiver) Normalize(h http.Header, body []byte) ([]behavior.Record, error) {
	recs, _, err := r.NormalizeBatch(h, body)
	return recs, err
}

// NormalizeBatch turns a verified batch (a JSON array of events) into
// records, one per event nudge uses.
//
// One unreadable event does not cost the others: SendGrid would retry the
// whole batch for 24 hours and the event would never read better, so it
// is left out and reported in skipped (each wrapping
// connectors.ErrMalformed, with its index) for the caller to log, while
// the rest are returned. Events of types nudge does not use (processed,
// unknown types) are left out silently. Several events with the same
// sg_event_id in one batch are one event; the first is kept.
//
// err wraps connectors.ErrMalformed when the body is not a JSON array or
// no event in it could be read, and connectors.ErrIgnored when every
// readable event was of an unused type (or the batch was empty).
func (r *Receiver) NormalizeBatch(_ http.Header, body []byte) (records []behavior.Record, skipped []error, err error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, nil, fmt.Errorf("sendgrid: normalize: body is not a JSON array of events: %v: %w", err, connectors.ErrMalformed)
	}
	if raws == nil {
		return nil, nil, fmt.Errorf("sendgrid: normalize: body is null, not an array of events: %w", connectors.ErrMalformed)
	}
	seen := map[string]bool{}
	ignored := 0
	for i, raw := range raws {
		rec, err := whNormalizeEvent(raw)
		switch {
		case errors.Is(err, connectors.ErrIgnored):
			ignored++
			continue
		case err != nil:
			skipped = append(skipped, fmt.Errorf("sendgrid: normalize: event %d: %w", i, err))
			continue
		case seen[rec.ID]:
			continue
		}
		seen[rec.ID] = true
		records = append(records, rec)
	}
	switch {
	case len(records) > 0:
		return records, skipped, nil
	case len(skipped) > 0 && ignored == 0:
		return nil, skipped, fmt.Errorf("sendgrid: normalize: none of %d events readable: %w", len(raws), connectors.ErrMalformed)
	}
	return nil, skipped, fmt.Errorf("sendgrid: normalize: no event of a used type among %d: %w", len(raws), connectors.ErrIgnored)
}

// whEvent holds the event fields nudge reads. Everything is decoded
// leniently (whText): a field whose type changes costs that attribute,
// not the event.
type whEvent struct {
	Email       whText  `json:"email"`
	Timestamp   whText  `json:"timestamp"`
	Event       whText  `json:"event"`
	SGEventID   whText  `json:"sg_event_id"`
	SGMessageID whText  `json:"sg_message_id"`
	SMTPID      whText  `json:"smtp-id"`
	Category    whTexts `json:"category"`
	Reason      whText  `json:"reason"`
	Status      whText  `json:"status"`
	Response    whText  `json:"response"`
	Type        whText  `json:"type"`
	URL         whText  `json:"url"`
	UserAgent   whText  `json:"useragent"`
	Attempt     whText  `json:"attempt"`
	ASMGroupID  whText  `json:"asm_group_id"`
	MachineOpen whText  `json:"sg_machine_open"`
	SendID      whText  `json:"nudge_send_id"`
	Rule        whText  `json:"nudge_rule"`
	Step        whText  `json:"nudge_step"`
}

var whKinds = map[string]behavior.Kind{
	"delivered":         behavior.EmailDelivered,
	"deferred":          behavior.EmailDeferred,
	"bounce":            behavior.EmailBounced,
	"dropped":           behavior.EmailDropped,
	"open":              behavior.EmailOpened,
	"click":             behavior.EmailClicked,
	"spamreport":        behavior.SpamReported,
	"unsubscribe":       behavior.Unsubscribed,
	"group_unsubscribe": behavior.Unsubscribed,
	"group_resubscribe": behavior.Resubscribed,
}

func whNormalizeEvent(raw json.RawMessage) (behavior.Record, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return behavior.Record{}, fmt.Errorf("not a JSON object: %w", connectors.ErrMalformed)
	}
	var ev whEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return behavior.Record{}, fmt.Errorf("decode: %v: %w", err, connectors.ErrMalformed)
	}
	if ev.Event == "" {
		return behavior.Record{}, fmt.Errorf("no event name: %w", connectors.ErrMalformed)
	}
	kind, ok := whKinds[string(ev.Event)]
	if !ok {
		return behavior.Record{}, fmt.Errorf("event %.40q: %w", ev.Event, connectors.ErrIgnored)
	}
	email := strings.TrimSpace(string(ev.Email))
	if email == "" {
		return behavior.Record{}, fmt.Errorf("%s event has no email: %w", ev.Event, connectors.ErrMalformed)
	}
	at, err := whParseUnix(string(ev.Timestamp))
	if err != nil {
		return behavior.Record{}, fmt.Errorf("%s event: %w", ev.Event, err)
	}
	id := behavior.DeriveID(whSource, string(ev.SGEventID))
	if ev.SGEventID == "" {
		// Without SendGrid's id the event's own bytes are the only stable
		// identity; a redelivered batch carries them unchanged.
		id = behavior.DeriveID(whSource, "event-bytes", string(raw))
	}
	rec := behavior.Record{
		ID:     id,
		Kind:   kind,
		Source: whSource,
		At:     at,
		Email:  email,
		Attrs:  map[string]any{behavior.AttrTopic: string(ev.Event)},
	}
	rec.SetRef(behavior.RefEventID, string(ev.SGEventID))
	rec.SetRef(behavior.RefSendID, string(ev.SendID))
	rec.SetRef(behavior.RefRuleID, string(ev.Rule))
	rec.SetRef(behavior.RefStep, string(ev.Step))
	if full := string(ev.SGMessageID); full != "" {
		rec.SetRef(behavior.RefMessageID, whXMessageID(full, string(ev.SMTPID)))
		rec.SetRef(RefSGMessageID, full)
	}
	if len(ev.Category) > 0 {
		rec.Attrs[AttrCategories] = []string(ev.Category)
	}
	switch kind {
	case behavior.EmailBounced:
		// "blocked" is a refusal of this message (reputation, content), not
		// a dead address; a bounce without a type predates the field and
		// was always a hard bounce.
		rec.Attrs[behavior.AttrPermanent] = ev.Type != "blocked"
		whSetAttr(&rec, "bounce_type", string(ev.Type))
		whSetAttr(&rec, behavior.AttrReason, string(ev.Reason))
		whSetAttr(&rec, "status", string(ev.Status))
	case behavior.EmailDropped:
		rec.Attrs[behavior.AttrPermanent] = whPermanentDropReasons[string(ev.Reason)]
		whSetAttr(&rec, behavior.AttrReason, string(ev.Reason))
		whSetAttr(&rec, "status", string(ev.Status))
	case behavior.EmailDelivered:
		whSetAttr(&rec, "response", string(ev.Response))
	case behavior.EmailDeferred:
		whSetAttr(&rec, "response", string(ev.Response))
		whSetAttr(&rec, "attempt", string(ev.Attempt))
	case behavior.EmailOpened:
		if ev.MachineOpen == "true" {
			rec.SetRef(behavior.RefMachineOpen, "true")
		}
		whSetAttr(&rec, "useragent", string(ev.UserAgent))
	case behavior.EmailClicked:
		rec.URL = string(ev.URL)
		whSetAttr(&rec, "useragent", string(ev.UserAgent))
	}
	if ev.Event == "group_unsubscribe" || ev.Event == "group_resubscribe" {
		if g, err := strconv.ParseInt(string(ev.ASMGroupID), 10, 64); err == nil {
			rec.Attrs[AttrASMGroupID] = g
		}
	}
	return rec, nil
}

// whXMessageID extracts the X-Message-Id from an sg_message_id: the part
// before the first '.', except for older ids that contain dots themselves,
// recognised by the smtp-id ("<X-Message-Id@host>") they start with.
func whXMessageID(sgMessageID, smtpID string) string {
	local, _, _ := strings.Cut(strings.Trim(smtpID, "<> "), "@")
	if local != "" && strings.HasPrefix(sgMessageID, local+".") {
		return local
	}
	id, _, _ := strings.Cut(sgMessageID, ".")
	return id
}

// whParseUnix reads integer unix seconds; a fractional part, which SendGrid
// does not send but a proxy re-encoding numbers might add, is dropped.
func whParseUnix(s string) (time.Time, error) {
	whole, _, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec <= 0 || sec > whMaxUnix {
		return time.Time{}, fmt.Errorf("bad timestamp %.40q: %w", s, connectors.ErrMalformed)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func whSetAttr(rec *behavior.Record, key, value string) {
	if value != "" {
		rec.Attrs[key] = value
	}
}

// whText is a JSON scalar read as text: strings as they are, numbers and
// booleans in their JSON spelling; null, objects and arrays read as "".
type whText string

// UnmarshalJSON never fails on well-formed JSON.
func (t *whText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*t = ""
	switch {
	case len(b) == 0:
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = whText(s)
	case b[0] == '{' || b[0] == '[' || string(b) == "null":
	default:
		*t = whText(b)
	}
	return nil
}

// whTexts is a field SendGrid sends as one string or an array of them
// (category).
type whTexts []string

// UnmarshalJSON accepts a scalar or an array of scalars.
func (ts *whTexts) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*ts = nil
	if len(b) > 0 && b[0] == '[' {
		var items []whText
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
		for _, it := range items {
			if it != "" {
				*ts = append(*ts, string(it))
			}
		}
		return nil
	}
	var one whText
	if err := one.UnmarshalJSON(b); err != nil {
		return err
	}
	if one != "" {
		*ts = whTexts{string(one)}
	}
	return nil
}
