package mailgun

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// mgSamples holds Mailgun's documented example of each event (PROTOCOLS
// §5.1, fixtures mailgun_event_*.json).
//
//go:embed testdata/webhook_event_delivered.json testdata/webhook_event_opened.json testdata/webhook_event_clicked.json testdata/webhook_event_unsubscribed.json testdata/webhook_event_complained.json testdata/webhook_event_failed_permanent.json testdata/webhook_event_failed_temporary.json
var mgSamples embed.FS

// SampleEmail is the address Sample uses when it is given none.
const SampleEmail = "shopper@example.com"

// mgSampleFiles maps the webhook names Mailgun's settings use (and the
// event names payloads use, where they differ) to the example files.
var mgSampleFiles = map[string]string{
	"delivered":      "delivered",
	"opened":         "opened",
	"clicked":        "clicked",
	"unsubscribed":   "unsubscribed",
	"complained":     "complained",
	"permanent_fail": "failed_permanent",
	"temporary_fail": "failed_temporary",
	"failed":         "failed_permanent",
}

// SampleEventTypes lists the events Sample can build, sorted.
func SampleEventTypes() []string {
	out := make([]string, 0, len(mgSampleFiles))
	for e := range mgSampleFiles {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// Sample builds a realistic webhook body for `nudge trigger mailgun
// clicked`: Mailgun's documented example of event (a webhook name such as
// "clicked" or "permanent_fail") with the recipient, timestamp, event id
// and message id replaced, and a signature object holding a fresh
// timestamp and token but no signature yet. Sign it with SignBody.
func Sample(event, email string, now time.Time) ([]byte, http.Header, error) {
	file, ok := mgSampleFiles[event]
	if !ok {
		return nil, nil, fmt.Errorf("mailgun: sample: unknown event %q (have %s)", event, strings.Join(SampleEventTypes(), ", "))
	}
	if email == "" {
		email = SampleEmail
	}
	raw, err := mgSamples.ReadFile("testdata/webhook_event_" + file + ".json")
	if err != nil {
		return nil, nil, fmt.Errorf("mailgun: sample: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var payload map[string]any
	if err := d.Decode(&payload); err != nil {
		return nil, nil, fmt.Errorf("mailgun: sample: %s: %w", file, err)
	}
	ev, _ := payload["event-data"].(map[string]any)
	if ev == nil {
		return nil, nil, fmt.Errorf("mailgun: sample: %s has no event-data", file)
	}
	id, err := mgRandom(11) // 22 characters, like Mailgun's event ids
	if err != nil {
		return nil, nil, err
	}
	msg, err := mgRandom(12)
	if err != nil {
		return nil, nil, err
	}
	token, err := mgRandom(25)
	if err != nil {
		return nil, nil, err
	}
	ev["id"] = id
	ev["timestamp"] = json.Number(fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000))
	ev["recipient"] = email
	if _, at, ok := strings.Cut(email, "@"); ok {
		ev["recipient-domain"] = at
	}
	headers := map[string]any{}
	if m, ok := ev["message"].(map[string]any); ok {
		if h, ok := m["headers"].(map[string]any); ok {
			headers = h
		}
	} else {
		ev["message"] = map[string]any{"headers": headers}
	}
	headers["message-id"] = now.UTC().Format("20060102150405") + "." + msg + "@sample.mailgun.org"
	if _, ok := headers["to"]; ok {
		headers["to"] = email
	}
	payload["signature"] = map[string]any{
		"timestamp": strconv.FormatInt(now.Unix(), 10),
		"token":     token,
		"signature": "",
	}
	body, err := json.MarshalIndent(payload, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("mailgun: sample: encode: %w", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return body, h, nil
}

// SignBody signs a webhook body as Mailgun would at time at: it sets the
// body's signature object to at's unix time, a token (the body's own when
// it has one, else a fresh one) and their signature under key, and returns
// the new body. The rest of the body keeps its content; it is re-encoded
// compactly, which Mailgun's signature (over timestamp and token only)
// does not cover.
func SignBody(key string, body []byte, at time.Time) ([]byte, error) {
	if key == "" {
		return nil, errors.New("mailgun: sign: no signing key")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, fmt.Errorf("mailgun: sign: body is not a JSON object: %v", err)
	}
	token := mgObject(top).obj("signature").text("token")
	if token == "" {
		var err error
		if token, err = mgRandom(25); err != nil {
			return nil, err
		}
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	sig, err := json.Marshal(map[string]string{"timestamp": ts, "token": token, "signature": Sign(key, ts, token)})
	if err != nil {
		return nil, fmt.Errorf("mailgun: sign: %w", err)
	}
	top["signature"] = sig
	out, err := json.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("mailgun: sign: %w", err)
	}
	return out, nil
}

// mgRandom returns n random bytes as lowercase hex (Mailgun tokens are 50
// hex characters).
func mgRandom(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("mailgun: sample: %w", err)
	}
	return hex.EncodeToString(b), nil
}
