package sendgrid

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// whSampleEvents is SendGrid's documented example of every event type
// (PROTOCOLS §4.2, fixture sendgrid_events.json).
//
//go:embed testdata/webhook_events.json
var whSampleEvents []byte

// SampleEmail is the address Sample uses when it is given none.
const SampleEmail = "shopper@example.com"

// SampleEventTypes lists the events Sample can build, sorted.
func SampleEventTypes() []string {
	out := make([]string, 0, len(whKinds))
	for e := range whKinds {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// Sample builds a realistic, unsigned Event Webhook batch holding one
// event of type event for email at now, for `nudge trigger sendgrid open`:
// SendGrid's documented example of that event with the email, timestamp,
// sg_event_id and sg_message_id replaced. The body ends in CRLF as
// SendGrid's do. The returned header carries WebhookTimestampHeader; sign
// with SignWithKey(priv, body, h.Get(WebhookTimestampHeader)) and set
// WebhookSignatureHeader.
func Sample(event, email string, now time.Time) ([]byte, http.Header, error) {
	if _, ok := whKinds[event]; !ok {
		return nil, nil, fmt.Errorf("sendgrid: sample: unknown event %q (have %s)", event, strings.Join(SampleEventTypes(), ", "))
	}
	if email == "" {
		email = SampleEmail
	}
	d := json.NewDecoder(bytes.NewReader(whSampleEvents))
	d.UseNumber()
	var all []map[string]any
	if err := d.Decode(&all); err != nil {
		return nil, nil, fmt.Errorf("sendgrid: sample: %w", err)
	}
	i := slices.IndexFunc(all, func(e map[string]any) bool { return e["event"] == event })
	if i < 0 {
		return nil, nil, fmt.Errorf("sendgrid: sample: no example of %q", event)
	}
	ev := all[i]
	eid, err := whSampleID(16)
	if err != nil {
		return nil, nil, err
	}
	mid, err := whSampleID(16) // 22 characters, like an X-Message-Id
	if err != nil {
		return nil, nil, err
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	ev["email"] = email
	ev["timestamp"] = json.Number(ts)
	ev["sg_event_id"] = eid
	ev["sg_message_id"] = mid + ".recvd-nudge-sample-1-0"
	if _, ok := ev["smtp-id"]; ok {
		ev["smtp-id"] = "<" + mid + "@geopod-ismtpd-sample>"
	}
	// SendGrid does not HTML-escape '<' and '>' (smtp-id), so neither do we.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode([]map[string]any{ev}); err != nil {
		return nil, nil, fmt.Errorf("sendgrid: sample: encode: %w", err)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "SendGrid Event API")
	h.Set(WebhookTimestampHeader, ts)
	return append(body, '\r', '\n'), h, nil
}

// whSampleID returns n random bytes in unpadded URL-safe base64, the
// alphabet of SendGrid's ids.
func whSampleID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("sendgrid: sample: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
