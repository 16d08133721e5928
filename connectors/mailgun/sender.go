package mailgun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"

	mgsdk "github.com/mailgun/mailgun-go/v4"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors"
)

// sendProvider is the provider name of the Sender.
const sendProvider = "mailgun"

// SenderConfig configures a Sender.
type SenderConfig struct {
	APIKey string
	Domain string
	// APIBase must end in /v3: mailgun-go's APIBaseUS (the default) or
	// APIBaseEU, which EU domains must use.
	APIBase string
	// HTTPClient (default: a client with a 30 s timeout). Send also
	// honours its context's deadline.
	HTTPClient *http.Client
	// Clock turns a rate limit's "try again after" date into a wait
	// (default clock.Real).
	Clock clock.Clock
}

// Sender hands messages to Mailgun's messages API through mailgun-go. It
// is safe for concurrent use.
type Sender struct {
	mg    *mgsdk.MailgunImpl
	clock clock.Clock
}

// NewSender returns a Sender, or an error for a missing key or domain or
// an API base not ending in /v3.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.APIKey == "" || cfg.Domain == "" {
		return nil, errors.New("mailgun: sender needs an api key and a domain")
	}
	base := strings.TrimRight(cfg.APIBase, "/")
	if base == "" {
		base = mgsdk.APIBaseUS
	}
	if !strings.HasSuffix(base, "/v3") {
		return nil, fmt.Errorf("mailgun: api base %q must end in /v3 (e.g. %s or %s)", cfg.APIBase, mgsdk.APIBaseUS, mgsdk.APIBaseEU)
	}
	hc := http.Client{Timeout: 30 * time.Second, Transport: connectors.ProviderTransport()}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	base0 := hc.Transport
	if base0 == nil {
		base0 = http.DefaultTransport
	}
	hc.Transport = &sendTransport{next: base0}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	mg := mgsdk.NewMailgun(cfg.Domain, cfg.APIKey)
	mg.SetAPIBase(base)
	mg.SetClient(&hc)
	return &Sender{mg: mg, clock: cfg.Clock}, nil
}

// Name returns "mailgun".
func (s *Sender) Name() string { return sendProvider }

// Send posts one message: a stored template (template + t:variables) or
// local subject/text/html; o:tag with the rule and step (Mailgun allows
// three); our send id and the other args as v: user variables, which come
// back in webhooks; the List-Unsubscribe headers as h: fields. 429 and 5xx
// are retryable, other 4xx permanent with Mailgun's message, transport
// failures retryable.
func (s *Sender) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	msg, err := BuildMessage(m)
	if err != nil {
		return connectors.Result{}, fmt.Errorf("mailgun: send %s: %v: %w", m.SendID, err, connectors.ErrPermanent)
	}
	info := &sendResponseInfo{}
	_, id, err := s.mg.Send(context.WithValue(ctx, sendInfoKey{}, info), msg)
	if err == nil {
		return connectors.Result{Provider: sendProvider, ProviderMessageID: id}, nil
	}
	return connectors.Result{}, s.classify(m.SendID, err, info)
}

// BuildMessage turns m into a mailgun-go message.
//
// Template data goes through AddTemplateVariable, which mailgun-go sends
// as the h:X-Mailgun-Variables header: that header is visible to
// recipients in the delivered MIME and is echoed into every webhook's
// user-variables. The Sender's transport therefore renames the field to
// t:variables, the dedicated template-variables parameter that mailgun-go
// v4.23 has no setter for.
func BuildMessage(m connectors.Message) (*mgsdk.Message, error) {
	if m.To.Email == "" {
		return nil, errors.New("no recipient")
	}
	if m.TemplateID == "" && (m.From.Email == "" || (m.Text == "" && m.HTML == "")) {
		return nil, errors.New("neither a template nor a from address with text or html")
	}
	from := ""
	if m.From.Email != "" {
		from = (&mail.Address{Name: m.From.Name, Address: m.From.Email}).String()
	}
	to := (&mail.Address{Name: m.To.Name, Address: m.To.Email}).String()
	msg := mgsdk.NewMessage(from, m.Subject, m.Text, to)
	if m.HTML != "" {
		msg.SetHTML(m.HTML)
	}
	if m.TemplateID != "" {
		msg.SetTemplate(m.TemplateID)
		for k, v := range m.TemplateData {
			if err := msg.AddTemplateVariable(k, v); err != nil {
				return nil, fmt.Errorf("template variable %s: %w", k, err)
			}
		}
	}
	if m.ReplyTo != nil && m.ReplyTo.Email != "" {
		msg.SetReplyTo((&mail.Address{Name: m.ReplyTo.Name, Address: m.ReplyTo.Email}).String())
	}
	if tags := sendTags(m.Tags); len(tags) > 0 {
		if err := msg.AddTag(tags...); err != nil {
			return nil, fmt.Errorf("tags: %w", err)
		}
	}
	for k, v := range m.Headers {
		msg.AddHeader(k, v)
	}
	args := map[string]string{}
	for k, v := range m.Args {
		args[k] = v
	}
	if m.SendID != "" {
		args[connectors.ArgSendID] = m.SendID
	}
	for k, v := range args {
		if err := msg.AddVariable(k, v); err != nil {
			return nil, fmt.Errorf("variable %s: %w", k, err)
		}
	}
	return msg, nil
}

// sendTags keeps what Mailgun accepts: at most three distinct ASCII tags
// of at most 128 characters.
func sendTags(tags []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tags {
		t = strings.Map(func(r rune) rune {
			if r < 0x20 || r > 0x7e {
				return -1
			}
			return r
		}, strings.TrimSpace(t))
		if len(t) > 128 {
			t = t[:128]
		}
		if t == "" || seen[t] || len(out) == mgsdk.MaxNumberOfTags {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}

// tryAgainAfter matches the date in Mailgun's rate-limit message "…
// limit exceeded, try again after Mon, 02 Jan 2006 15:04:05 MST".
var tryAgainAfter = regexp.MustCompile(`try again after ([A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [A-Z]+)`)

func (s *Sender) classify(sendID string, err error, info *sendResponseInfo) error {
	var ure *mgsdk.UnexpectedResponseError
	if !errors.As(err, &ure) {
		if errors.Is(err, mgsdk.ErrInvalidMessage) {
			return fmt.Errorf("mailgun: send %s: %v: %w", sendID, err, connectors.ErrPermanent)
		}
		return &connectors.RetryableError{Err: fmt.Errorf("mailgun: send %s: %w", sendID, err)}
	}
	text := sendErrorText(ure.Data)
	switch code := ure.Actual; {
	case code == http.StatusTooManyRequests:
		return &connectors.RetryableError{
			After: s.retryAfter(info.retryAfter, text),
			Err:   fmt.Errorf("mailgun: send %s: %d: %s", sendID, code, text),
		}
	case code >= 500:
		return &connectors.RetryableError{
			After: s.retryAfter(info.retryAfter, ""),
			Err:   fmt.Errorf("mailgun: send %s: %d: %s", sendID, code, text),
		}
	default:
		return fmt.Errorf("mailgun: send %s: %d: %s: %w", sendID, code, text, connectors.ErrPermanent)
	}
}

// retryAfter prefers a Retry-After header, then the date in the message.
func (s *Sender) retryAfter(header, text string) time.Duration {
	now := s.clock.Now()
	if header != "" {
		if n, err := strconv.Atoi(header); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(header); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	if m := tryAgainAfter.FindStringSubmatch(text); m != nil {
		if t, err := time.Parse(time.RFC1123, m[1]); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	return 0
}

// sendErrorText extracts {"message": "..."} from an error body, else the
// body itself ("Forbidden" on 401).
func sendErrorText(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	t := strings.TrimSpace(string(body))
	if len(t) > 500 {
		t = t[:500] + "…"
	}
	if t == "" {
		return "(empty body)"
	}
	return t
}

// sendInfoKey carries a *sendResponseInfo through mailgun-go to the
// transport, which is the only place that sees response headers.
type sendInfoKey struct{}

type sendResponseInfo struct {
	retryAfter string
}

// Form fields renamed on the way out (see BuildMessage).
const (
	fieldHeaderVariables   = "h:X-Mailgun-Variables"
	fieldTemplateVariables = "t:variables"
)

// sendTransport adapts mailgun-go's requests: it moves template variables
// from the recipient-visible header field to t:variables, leaves out empty
// fields, and records Retry-After on error responses.
type sendTransport struct {
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *sendTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/messages") && req.Body != nil {
		r, err := rewriteMessageForm(req)
		if err != nil {
			return nil, fmt.Errorf("mailgun: rewrite form: %w", err)
		}
		req = r
	}
	resp, err := t.next.RoundTrip(req)
	if resp != nil && resp.StatusCode >= 400 {
		if info, ok := req.Context().Value(sendInfoKey{}).(*sendResponseInfo); ok {
			info.retryAfter = resp.Header.Get("Retry-After")
		}
	}
	return resp, err
}

// dropIfEmpty reports the fields mailgun-go always sends that, empty,
// could override a stored template's own subject or sender: they are left
// out instead.
func dropIfEmpty(field string) bool {
	switch field {
	case "from", "subject", "text":
		return true
	}
	return false
}

// rewriteMessageForm returns a copy of req whose multipart form has
// fieldHeaderVariables renamed to fieldTemplateVariables and empty
// from/subject/text fields removed; other parts are copied byte for byte
// under the same boundary.
func rewriteMessageForm(req *http.Request) (*http.Request, error) {
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return req, nil
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w := multipart.NewWriter(&out)
	if err := w.SetBoundary(params["boundary"]); err != nil {
		return nil, err
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		content, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		name, isFile := p.FormName(), p.FileName() != ""
		if !isFile && len(content) == 0 && dropIfEmpty(name) {
			continue
		}
		h := textproto.MIMEHeader{}
		for k, v := range p.Header {
			h[k] = append([]string(nil), v...)
		}
		if !isFile && name == fieldHeaderVariables {
			h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": fieldTemplateVariables}))
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write(content); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return withBody(req, out.Bytes()), nil
}

func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return r
}
