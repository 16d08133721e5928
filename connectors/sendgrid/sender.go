package sendgrid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	sendgridsdk "github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors"
)

// DefaultAPIBase is SendGrid's global API host; EU subusers use
// https://api.eu.sendgrid.com.
const DefaultAPIBase = "https://api.sendgrid.com"

// sendPath is the Mail Send endpoint below the API base.
const sendPath = "/v3/mail/send"

// sendProvider is the provider name of the Sender.
const sendProvider = "sendgrid"

// SenderConfig configures a Sender.
type SenderConfig struct {
	APIKey string
	// APIBase is the API host (default DefaultAPIBase); requests go to
	// APIBase + "/v3/mail/send".
	APIBase string
	// HTTPClient (default: a client with a 30 s timeout). Send also
	// honours its context's deadline.
	HTTPClient *http.Client
	// Clock turns X-RateLimit-Reset into a wait (default clock.Real).
	Clock clock.Clock
}

// Sender hands messages to SendGrid's v3 Mail Send API. It is safe for
// concurrent use.
type Sender struct {
	cfg    SenderConfig
	client *rest.Client
}

// NewSender returns a Sender.
func NewSender(cfg SenderConfig) *Sender {
	cfg.APIBase = strings.TrimRight(cfg.APIBase, "/")
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: connectors.ProviderTransport()}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Sender{cfg: cfg, client: &rest.Client{HTTPClient: cfg.HTTPClient}}
}

// Name returns "sendgrid".
func (s *Sender) Name() string { return sendProvider }

// Send posts one message. sendgrid-go reports no error for HTTP errors,
// so the status is checked here: 200/202 succeed (X-Message-Id becomes the
// provider message id), 429 and 5xx are retryable (After from Retry-After
// or X-RateLimit-Reset), other statuses are permanent with SendGrid's
// error messages, and transport failures are retryable.
func (s *Sender) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	body, err := BuildMailBody(m)
	if err != nil {
		return connectors.Result{}, fmt.Errorf("sendgrid: send %s: %v: %w", m.SendID, err, connectors.ErrPermanent)
	}
	req := sendgridsdk.GetRequest(s.cfg.APIKey, sendPath, s.cfg.APIBase)
	req.Method = rest.Post
	req.Body = body
	resp, err := s.client.SendWithContext(ctx, req)
	if err != nil {
		return connectors.Result{}, &connectors.RetryableError{Err: fmt.Errorf("sendgrid: send %s: %w", m.SendID, err)}
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK || code == http.StatusAccepted:
		return connectors.Result{Provider: sendProvider, ProviderMessageID: header(resp.Headers, "X-Message-Id")}, nil
	case code == http.StatusTooManyRequests:
		return connectors.Result{}, &connectors.RetryableError{
			After: s.retryAfter(resp.Headers),
			Err:   fmt.Errorf("sendgrid: send %s: %d rate limited: %s", m.SendID, code, errorText(resp.Body)),
		}
	case code >= 500:
		return connectors.Result{}, &connectors.RetryableError{
			After: s.retryAfter(resp.Headers),
			Err:   fmt.Errorf("sendgrid: send %s: %d: %s", m.SendID, code, errorText(resp.Body)),
		}
	default:
		return connectors.Result{}, fmt.Errorf("sendgrid: send %s: %d: %s: %w", m.SendID, code, errorText(resp.Body), connectors.ErrPermanent)
	}
}

// BuildMailBody renders m as a v3 Mail Send JSON body: one
// personalization for the recipient; template_id with
// dynamic_template_data, or subject and text/plain + text/html content;
// headers (List-Unsubscribe …), custom_args, categories and the ASM group.
func BuildMailBody(m connectors.Message) ([]byte, error) {
	if m.To.Email == "" {
		return nil, errors.New("no recipient")
	}
	if m.From.Email == "" {
		return nil, errors.New("no from address")
	}
	v3 := mail.NewV3Mail()
	v3.SetFrom(mail.NewEmail(m.From.Name, m.From.Email))
	if m.ReplyTo != nil && m.ReplyTo.Email != "" {
		v3.SetReplyTo(mail.NewEmail(m.ReplyTo.Name, m.ReplyTo.Email))
	}
	p := mail.NewPersonalization()
	p.AddTos(mail.NewEmail(m.To.Name, m.To.Email))
	switch {
	case m.TemplateID != "":
		v3.SetTemplateID(m.TemplateID)
		for k, v := range m.TemplateData {
			p.SetDynamicTemplateData(k, v)
		}
	case m.Subject != "" && (m.Text != "" || m.HTML != ""):
		v3.Subject = m.Subject
		// SendGrid requires text/plain before text/html.
		if m.Text != "" {
			v3.AddContent(mail.NewContent("text/plain", m.Text))
		}
		if m.HTML != "" {
			v3.AddContent(mail.NewContent("text/html", m.HTML))
		}
	default:
		return nil, errors.New("neither a template id nor a subject with content")
	}
	v3.AddPersonalizations(p)
	for k, v := range m.Headers {
		v3.SetHeader(k, v)
	}
	for k, v := range m.Args {
		v3.SetCustomArg(k, v)
	}
	if m.SendID != "" {
		v3.SetCustomArg(connectors.ArgSendID, m.SendID)
	}
	if cats := categories(m.Tags); len(cats) > 0 {
		v3.AddCategories(cats...)
	}
	if m.UnsubscribeGroup > 0 {
		v3.SetASM(mail.NewASM().SetGroupID(m.UnsubscribeGroup))
	}
	// json.Marshal rather than mail.GetRequestBody, which logs and drops
	// an encoding error.
	b, err := json.Marshal(v3)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

// categories applies SendGrid's limits: at most 10, unique, non-empty,
// each at most 255 characters.
func categories(tags []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if len(t) > 255 {
			t = t[:255]
		}
		if t == "" || seen[t] || len(out) == 10 {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}

// retryAfter reads how long SendGrid asked us to wait: Retry-After
// (seconds or an HTTP date), else X-RateLimit-Reset (a unix timestamp).
func (s *Sender) retryAfter(h map[string][]string) time.Duration {
	now := s.cfg.Clock.Now()
	if v := header(h, "Retry-After"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	if v := header(h, "X-RateLimit-Reset"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if d := time.Unix(n, 0).Sub(now); d > 0 {
				return d.Round(time.Second)
			}
		}
	}
	return 0
}

func header(h map[string][]string, key string) string { return http.Header(h).Get(key) }

// errorText joins the messages of a SendGrid error body
// {"errors":[{"message","field"}]}; any other body is returned trimmed.
func errorText(body string) string {
	var e struct {
		Errors []struct {
			Message string  `json:"message"`
			Field   *string `json:"field"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &e); err == nil && len(e.Errors) > 0 {
		msgs := make([]string, 0, len(e.Errors))
		for _, x := range e.Errors {
			msg := x.Message
			if x.Field != nil && *x.Field != "" {
				msg = *x.Field + ": " + msg
			}
			msgs = append(msgs, msg)
		}
		return strings.Join(msgs, "; ")
	}
	body = strings.TrimSpace(body)
	if len(body) > 500 {
		body = body[:500] + "…"
	}
	if body == "" {
		return "(empty body)"
	}
	return body
}
