package mailgun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mgsdk "github.com/mailgun/mailgun-go/v4"
	"github.com/mailgun/mailgun-go/v4/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/connectortest"
)

// formServer is a fake messages endpoint that parses each request's
// multipart form and answers with the next canned response.
type formServer struct {
	mu        sync.Mutex
	requests  []formRequest
	responses []formResponse
}

type formRequest struct {
	path       string
	user, pass string
	form       url.Values
}

type formResponse struct {
	status int
	header map[string]string
	body   string
}

func (f *formServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		http.Error(w, "not multipart: "+err.Error(), http.StatusBadRequest)
		return
	}
	user, pass, _ := r.BasicAuth()
	f.mu.Lock()
	f.requests = append(f.requests, formRequest{r.URL.Path, user, pass, url.Values(r.MultipartForm.Value)})
	resp := formResponse{status: 200, body: `{"id":"<20260301120000.1.ABCDEF@mg.example.com>","message":"Queued. Thank you."}`}
	if len(f.responses) > 0 {
		resp, f.responses = f.responses[0], f.responses[1:]
	}
	f.mu.Unlock()
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.status)
	_, _ = io.WriteString(w, resp.body)
}

func newFormServer(t *testing.T, responses ...formResponse) (*formServer, *httptest.Server) {
	t.Helper()
	f := &formServer{responses: responses}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func newTestSender(t *testing.T, base string, clk clock.Clock) *Sender {
	t.Helper()
	s, err := NewSender(SenderConfig{APIKey: "key-test", Domain: "mg.example.com", APIBase: base, Clock: clk})
	require.NoError(t, err)
	return s
}

func templateMessage() connectors.Message {
	return connectors.Message{
		SendID:     "5e1d",
		To:         connectors.Address{Email: "ann@example.com", Name: "Ann Lee"},
		From:       connectors.Address{Email: "shop@example.com", Name: "Example Store"},
		TemplateID: "cart-reminder",
		TemplateData: map[string]any{
			"customer": map[string]any{"first_name": "Ann"},
			"items":    []any{map[string]any{"title": "Trail Runner", "price": "$54.00"}},
		},
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://nudge.example.com/u/tok>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
		Tags: []string{"cart-abandonment", "step-1"},
		Args: map[string]string{connectors.ArgSendID: "5e1d", "nudge_rule": "cart-abandonment", "nudge_step": "1"},
	}
}

func keys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestSenderPostsExactTemplateForm(t *testing.T) {
	f, srv := newFormServer(t)
	s := newTestSender(t, srv.URL+"/v3", nil)

	res, err := s.Send(context.Background(), templateMessage())
	require.NoError(t, err)
	assert.Equal(t, connectors.Result{Provider: "mailgun", ProviderMessageID: "<20260301120000.1.ABCDEF@mg.example.com>"}, res)
	require.Len(t, f.requests, 1)
	got := f.requests[0]
	assert.Equal(t, "/v3/mg.example.com/messages", got.path)
	assert.Equal(t, "api", got.user)
	assert.Equal(t, "key-test", got.pass)
	assert.Equal(t, []string{
		"from", "h:List-Unsubscribe", "h:List-Unsubscribe-Post", "o:tag", "t:variables", "template", "to",
		"v:nudge_rule", "v:nudge_send_id", "v:nudge_step",
	}, keys(got.form), "exactly these fields: no empty subject/text, no h:X-Mailgun-Variables")
	assert.Equal(t, []string{`"Example Store" <shop@example.com>`}, got.form["from"])
	assert.Equal(t, []string{`"Ann Lee" <ann@example.com>`}, got.form["to"])
	assert.Equal(t, []string{"cart-reminder"}, got.form["template"])
	assert.JSONEq(t, `{"customer":{"first_name":"Ann"},"items":[{"title":"Trail Runner","price":"$54.00"}]}`, got.form.Get("t:variables"))
	assert.Equal(t, []string{"cart-abandonment", "step-1"}, got.form["o:tag"])
	assert.Equal(t, []string{"5e1d"}, got.form["v:nudge_send_id"])
	assert.Equal(t, []string{"cart-abandonment"}, got.form["v:nudge_rule"])
	assert.Equal(t, []string{"1"}, got.form["v:nudge_step"])
	assert.Equal(t, []string{"<https://nudge.example.com/u/tok>"}, got.form["h:List-Unsubscribe"])
	assert.Equal(t, []string{"List-Unsubscribe=One-Click"}, got.form["h:List-Unsubscribe-Post"])
}

func TestSenderPostsLocalContent(t *testing.T) {
	f, srv := newFormServer(t)
	s := newTestSender(t, srv.URL+"/v3/", nil)
	m := connectors.Message{
		SendID:  "s2",
		To:      connectors.Address{Email: "bo@example.com"},
		From:    connectors.Address{Email: "shop@example.com"},
		ReplyTo: &connectors.Address{Email: "help@example.com", Name: "Help"},
		Subject: "Your cart",
		HTML:    "<p>Trail &amp; Runner</p>",
		Text:    "Trail & Runner",
		Tags:    []string{"a", "b", "c", "d", "a"},
	}
	_, err := s.Send(context.Background(), m)
	require.NoError(t, err)
	require.Len(t, f.requests, 1)
	got := f.requests[0].form
	assert.Equal(t, []string{"from", "h:Reply-To", "html", "o:tag", "subject", "text", "to", "v:nudge_send_id"}, keys(got))
	assert.Equal(t, "Your cart", got.Get("subject"))
	assert.Equal(t, "<p>Trail &amp; Runner</p>", got.Get("html"))
	assert.Equal(t, "Trail & Runner", got.Get("text"))
	assert.Equal(t, `"Help" <help@example.com>`, got.Get("h:Reply-To"))
	assert.Equal(t, []string{"a", "b", "c"}, got["o:tag"], "Mailgun takes at most three tags")
}

func TestSenderAgainstMailgunMockServer(t *testing.T) {
	mock := mgsdk.NewMockServer()
	defer mock.Stop()
	s := newTestSender(t, mock.URL(), nil)

	m := templateMessage()
	m.TemplateID = ""
	m.Subject, m.Text = "Your cart", "Trail Runner"
	res, err := s.Send(context.Background(), m)
	require.NoError(t, err)
	require.NotEmpty(t, res.ProviderMessageID)

	msgID := strings.Trim(res.ProviderMessageID, "<>")
	var accepted []*events.Accepted
	for _, e := range mock.Events() {
		if a, ok := e.(*events.Accepted); ok && a.Message.Headers.MessageID == msgID {
			accepted = append(accepted, a)
		}
	}
	require.Len(t, accepted, 1, "the mock records exactly one accepted event for the message")
	assert.Contains(t, accepted[0].Recipient, "ann@example.com")
	assert.Equal(t, "Your cart", accepted[0].Message.Headers.Subject)
}

func TestSenderMapsErrors(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		resp      formResponse
		retryable bool
		after     time.Duration
		permanent bool
		errText   string
	}{
		{
			name:      "400 permanent with message",
			resp:      formResponse{status: 400, body: `{"message":"'from' parameter is not a valid address. please check documentation"}`},
			permanent: true,
			errText:   "'from' parameter is not a valid address",
		},
		{
			name:      "401 Forbidden body",
			resp:      formResponse{status: 401, body: "Forbidden"},
			permanent: true,
			errText:   "Forbidden",
		},
		{
			name:      "404 domain not found",
			resp:      formResponse{status: 404, body: `{"message":"Domain not found: mg.example.com"}`},
			permanent: true,
			errText:   "Domain not found",
		},
		{
			name: "429 with try again after date",
			resp: formResponse{status: 429, body: `{"message":"Domain mg.example.com is not allowed to send: request limit exceeded, try again after ` +
				now.Add(2*time.Minute).Format(time.RFC1123) + `"}`},
			retryable: true,
			after:     2 * time.Minute,
			errText:   "request limit exceeded",
		},
		{
			name:      "429 with Retry-After header",
			resp:      formResponse{status: 429, header: map[string]string{"Retry-After": "17"}, body: `{"message":"rate limited"}`},
			retryable: true,
			after:     17 * time.Second,
		},
		{
			name:      "500 retryable",
			resp:      formResponse{status: 500, body: `{"message":"internal error"}`},
			retryable: true,
			errText:   "internal error",
		},
		{
			name:      "503 retryable",
			resp:      formResponse{status: 503, body: "unavailable"},
			retryable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newFormServer(t, tt.resp)
			s := newTestSender(t, srv.URL+"/v3", clock.NewFake(now))
			_, err := s.Send(context.Background(), templateMessage())
			require.Error(t, err)
			var re *connectors.RetryableError
			assert.Equal(t, tt.retryable, errors.As(err, &re), "retryable: %v", err)
			assert.Equal(t, tt.permanent, errors.Is(err, connectors.ErrPermanent), "permanent: %v", err)
			if tt.retryable {
				assert.Equal(t, tt.after, re.After)
			}
			assert.Contains(t, err.Error(), tt.errText)
		})
	}
}

func TestSenderTransportFailureIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL + "/v3"
	srv.Close()
	_, err := newTestSender(t, base, nil).Send(context.Background(), templateMessage())
	var re *connectors.RetryableError
	require.ErrorAs(t, err, &re)
}

func TestNewSenderConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     SenderConfig
		wantErr bool
	}{
		{"us default", SenderConfig{APIKey: "k", Domain: "d"}, false},
		{"eu", SenderConfig{APIKey: "k", Domain: "d", APIBase: mgsdk.APIBaseEU}, false},
		{"trailing slash", SenderConfig{APIKey: "k", Domain: "d", APIBase: "https://api.eu.mailgun.net/v3/"}, false},
		{"no version", SenderConfig{APIKey: "k", Domain: "d", APIBase: "https://api.mailgun.net"}, true},
		{"no key", SenderConfig{Domain: "d"}, true},
		{"no domain", SenderConfig{APIKey: "k"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSender(tt.cfg)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "mailgun", s.Name())
		})
	}
}

func TestSenderRejectsUnsendableMessages(t *testing.T) {
	f, srv := newFormServer(t)
	s := newTestSender(t, srv.URL+"/v3", nil)
	tests := []struct {
		name string
		edit func(*connectors.Message)
	}{
		{"no recipient", func(m *connectors.Message) { m.To.Email = "" }},
		{"no content", func(m *connectors.Message) { m.TemplateID = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := templateMessage()
			tt.edit(&m)
			_, err := s.Send(context.Background(), m)
			assert.ErrorIs(t, err, connectors.ErrPermanent)
		})
	}
	assert.Empty(t, f.requests)
}

// TestSenderKeepsConnectionsWarmBetweenBatches: as for SendGrid, a batch
// of due steps calls at once, and the next batch must find those
// connections open.
func TestSenderKeepsConnectionsWarmBetweenBatches(t *testing.T) {
	first, second := connectortest.ConnectionsPerBurst(t, 32, &formServer{}, func(url string) func(int) error {
		s := newTestSender(t, url+"/v3", clock.Real{})
		return func(i int) error {
			m := templateMessage()
			m.SendID = fmt.Sprintf("s%d", i)
			_, err := s.Send(context.Background(), m)
			return err
		}
	})
	if second > 2 {
		t.Errorf("the second batch opened %d new connections (the first %d); want the first batch's reused", second, first)
	}
}
