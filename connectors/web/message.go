package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Segment limits (HTTP Tracking API, "Max request size"): one call may be
// at most 32 KB, a batch at most 500 KB and 2,500 calls.
const (
	MaxEventBytes    = 32 << 10
	MaxBatchBytes    = 500 << 10
	MaxBatchMessages = 2500
)

// maxIDLen bounds ids: they become store index keys.
const maxIDLen = 200

// Call types of the Segment spec.
const (
	TypeTrack    = "track"
	TypeIdentify = "identify"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeAlias    = "alias"
	TypeGroup    = "group"
)

// ident is an id that Segment libraries send as a string but some send
// as a number (numeric database user ids); both read as a string.
type ident string

func (i *ident) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*i = ""
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*i = ident(strings.TrimSpace(s))
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id must be a string or a number")
	}
	*i = ident(n.String())
	return nil
}

// Message is one Segment call (track, identify, page, screen, alias or
// group) as it arrives, either alone or inside a batch. Unknown fields
// are ignored, as Segment does.
type Message struct {
	Type              string         `json:"type"`
	MessageID         ident          `json:"messageId"`
	AnonymousID       ident          `json:"anonymousId"`
	UserID            ident          `json:"userId"`
	PreviousID        ident          `json:"previousId"`
	GroupID           ident          `json:"groupId"`
	Event             string         `json:"event"`
	Name              string         `json:"name"`
	Category          string         `json:"category"`
	Properties        map[string]any `json:"properties"`
	Traits            map[string]any `json:"traits"`
	Context           map[string]any `json:"context"`
	Timestamp         string         `json:"timestamp"`
	OriginalTimestamp string         `json:"originalTimestamp"`
	SentAt            string         `json:"sentAt"`
	WriteKey          string         `json:"writeKey"`
	Channel           string         `json:"channel"`
}

// Batch is the body of /v1/batch: calls plus context, sentAt and write key
// shared by all of them.
type Batch struct {
	Batch    []json.RawMessage `json:"batch"`
	Context  map[string]any    `json:"context"`
	SentAt   string            `json:"sentAt"`
	WriteKey string            `json:"writeKey"`
}

// decodeJSON decodes one JSON value with numbers kept as json.Number, so
// prices never pass through float64, and refuses trailing data.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// ParseMessage reads one call posted to /v1/<typ>. The route decides the
// type, as in Segment's API; typ "" takes it from the body (batch items).
func ParseMessage(body []byte, typ string) (Message, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return Message{}, fmt.Errorf("%w: empty body", ErrInvalid)
	}
	if len(body) > MaxEventBytes {
		return Message{}, fmt.Errorf("%w: event is %d bytes, over the %d byte limit", ErrTooLarge, len(body), MaxEventBytes)
	}
	var m Message
	if err := decodeJSON(body, &m); err != nil {
		return Message{}, fmt.Errorf("%w: invalid JSON: %v", ErrInvalid, err)
	}
	if typ != "" {
		m.Type = typ
	}
	m.Type = strings.ToLower(strings.TrimSpace(m.Type))
	return m, m.validate()
}

// ParseBatch reads a /v1/batch body. Malformed JSON, a body over the
// batch limit or too many calls is an error for the whole batch; calls
// that are individually invalid come back in rejected (by index) while
// the valid ones are returned, which is what Segment does.
func ParseBatch(body []byte, maxBytes int) (b Batch, msgs []Message, rejected []Rejection, err error) {
	if maxBytes <= 0 {
		maxBytes = MaxBatchBytes
	}
	if len(body) > maxBytes {
		return Batch{}, nil, nil, fmt.Errorf("%w: batch is %d bytes, over the %d byte limit", ErrTooLarge, len(body), maxBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Batch{}, nil, nil, fmt.Errorf("%w: empty body", ErrInvalid)
	}
	if err := decodeJSON(body, &b); err != nil {
		return Batch{}, nil, nil, fmt.Errorf("%w: invalid JSON: %v", ErrInvalid, err)
	}
	if b.Batch == nil {
		return Batch{}, nil, nil, fmt.Errorf("%w: missing \"batch\" array", ErrInvalid)
	}
	if len(b.Batch) > MaxBatchMessages {
		return Batch{}, nil, nil, fmt.Errorf("%w: %d calls in one batch, over the limit of %d", ErrTooLarge, len(b.Batch), MaxBatchMessages)
	}
	for i, raw := range b.Batch {
		m, err := ParseMessage(raw, "")
		if err != nil {
			rejected = append(rejected, Rejection{Index: i, Error: err.Error()})
			continue
		}
		if m.SentAt == "" {
			m.SentAt = b.SentAt
		}
		m.Context = mergeContext(b.Context, m.Context)
		msgs = append(msgs, m)
	}
	return b, msgs, rejected, nil
}

// Rejection names one batch call that was not accepted, and why.
type Rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// mergeContext overlays a call's own context on the batch's: Segment
// merges the batch context into every call, the call winning.
func mergeContext(batch, own map[string]any) map[string]any {
	if len(batch) == 0 {
		return own
	}
	out := make(map[string]any, len(batch)+len(own))
	for k, v := range batch {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

func (m *Message) validate() error {
	switch m.Type {
	case TypeTrack:
		if strings.TrimSpace(m.Event) == "" {
			return fmt.Errorf("%w: track call without \"event\"", ErrInvalid)
		}
		if len(m.Event) > 150 {
			return fmt.Errorf("%w: event name longer than 150 characters", ErrInvalid)
		}
	case TypeIdentify, TypePage, TypeScreen, TypeGroup:
	case TypeAlias:
		if m.PreviousID == "" || m.UserID == "" {
			return fmt.Errorf("%w: alias needs both \"previousId\" and \"userId\"", ErrInvalid)
		}
	case "":
		return fmt.Errorf("%w: missing \"type\"", ErrInvalid)
	default:
		return fmt.Errorf("%w: unknown type %q", ErrInvalid, m.Type)
	}
	for name, id := range map[string]ident{"messageId": m.MessageID, "anonymousId": m.AnonymousID, "userId": m.UserID, "previousId": m.PreviousID} {
		if len(id) > maxIDLen {
			return fmt.Errorf("%w: %s longer than %d characters", ErrInvalid, name, maxIDLen)
		}
	}
	if m.UserID == "" && m.AnonymousID == "" && m.email() == "" && m.nudgeToken() == "" {
		return fmt.Errorf("%w: \"userId\" or \"anonymousId\" is required", ErrInvalid)
	}
	return nil
}

// str reads a string field of a JSON object, accepting numbers too.
func str(m map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			if s := strings.TrimSpace(v); s != "" {
				return s
			}
		case json.Number:
			return v.String()
		case bool:
			return strconv.FormatBool(v)
		}
	}
	return ""
}

// obj reads a nested JSON object.
func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// email finds the address a call carries: traits (identify), context
// traits (analytics.js puts identified traits there) or properties.
func (m *Message) email() string {
	for _, src := range []map[string]any{m.Traits, obj(m.Context, "traits"), m.Properties} {
		if e := str(src, "email", "Email"); e != "" && looksLikeEmail(e) {
			return e
		}
	}
	if u := string(m.UserID); looksLikeEmail(u) {
		return u
	}
	return ""
}

// nudgeToken is the signed identity token the storefront script forwards
// from a nudge_id link parameter.
func (m *Message) nudgeToken() string {
	for _, src := range []map[string]any{m.Traits, obj(m.Context, "traits")} {
		if t := str(src, "nudge_id"); t != "" {
			return t
		}
	}
	return ""
}

// looksLikeEmail is a cheap plausibility check: one @ with text around it
// and a dot in the domain, no spaces. Anything stricter rejects real
// addresses.
func looksLikeEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(`<>,;"`, c) {
			return false
		}
	}
	domain := s[at+1:]
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// occurredAt applies Segment's clock-skew correction: the device clock's
// offset is sentAt − timestamp, so the event happened at
// receivedAt − (sentAt − timestamp). Without sentAt the timestamp is taken
// as is (historical imports); without a usable timestamp, receivedAt.
func (m *Message) occurredAt(received time.Time) (at time.Time, note string) {
	tsStr := m.Timestamp
	if tsStr == "" {
		tsStr = m.OriginalTimestamp
	}
	if tsStr == "" {
		return received, ""
	}
	ts, err := parseTime(tsStr)
	if err != nil {
		return received, "unparseable timestamp " + strconv.Quote(truncate(tsStr, 40))
	}
	if m.SentAt == "" {
		return ts, ""
	}
	sent, err := parseTime(m.SentAt)
	if err != nil {
		return ts, "unparseable sentAt " + strconv.Quote(truncate(m.SentAt, 40))
	}
	at = received.Add(-sent.Sub(ts))
	if at.After(received) {
		// A timestamp after sentAt is a client bug; the event cannot have
		// happened after we received it.
		at = received
	}
	return at, ""
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		// Unix milliseconds, as some mobile SDKs send.
		if n > 1e11 {
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time: %q", s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
