package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/connectortest"
)

// sendRecorder is a fake Mail Send endpoint: it records each request and
// answers with the next canned response.
type sendRecorder struct {
	mu        sync.Mutex
	requests  []recordedRequest
	responses []cannedResponse
}

type recordedRequest struct {
	method, path string
	header       http.Header
	body         []byte
}

type cannedResponse struct {
	status int
	header map[string]string
	body   string
}

func (r *sendRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests = append(r.requests, recordedRequest{req.Method, req.URL.Path, req.Header.Clone(), body})
	resp := cannedResponse{status: http.StatusAccepted, header: map[string]string{"X-Message-Id": "default-id"}}
	if len(r.responses) > 0 {
		resp, r.responses = r.responses[0], r.responses[1:]
	}
	r.mu.Unlock()
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.status)
	_, _ = io.WriteString(w, resp.body)
}

func newSendServer(t *testing.T, responses ...cannedResponse) (*sendRecorder, *httptest.Server) {
	t.Helper()
	rec := &sendRecorder{responses: responses}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv
}

func templateMessage() connectors.Message {
	return connectors.Message{
		SendID:     "5e1d",
		To:         connectors.Address{Email: "ann@example.com", Name: "Ann Lee"},
		From:       connectors.Address{Email: "shop@example.com", Name: "Example Store"},
		ReplyTo:    &connectors.Address{Email: "help@example.com"},
		TemplateID: "d-0123456789abcdef",
		TemplateData: map[string]any{
			"customer":     map[string]any{"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"},
			"items":        []any{map[string]any{"title": "Trail Runner", "price": "$54.00", "quantity": 1}},
			"recovery_url": "https://example.com/cart/recover",
			"step":         1,
		},
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://nudge.example.com/u/tok>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
		Tags:             []string{"cart-abandonment", "step-1"},
		Args:             map[string]string{connectors.ArgSendID: "5e1d", "nudge_rule": "cart-abandonment", "nudge_step": "1"},
		UnsubscribeGroup: 42,
	}
}

func TestSenderPostsExactTemplateRequest(t *testing.T) {
	rec, srv := newSendServer(t, cannedResponse{status: http.StatusAccepted, header: map[string]string{"X-Message-Id": "W3rGm5pIQpaD6b0y2jPNgA"}})
	s := NewSender(SenderConfig{APIKey: "SG.test-key", APIBase: srv.URL})

	res, err := s.Send(context.Background(), templateMessage())
	require.NoError(t, err)
	assert.Equal(t, connectors.Result{Provider: "sendgrid", ProviderMessageID: "W3rGm5pIQpaD6b0y2jPNgA"}, res)
	require.Len(t, rec.requests, 1)
	got := rec.requests[0]
	assert.Equal(t, http.MethodPost, got.method)
	assert.Equal(t, "/v3/mail/send", got.path)
	assert.Equal(t, "Bearer SG.test-key", got.header.Get("Authorization"))
	assert.Equal(t, "application/json", got.header.Get("Content-Type"))
	assert.JSONEq(t, `{
		"from": {"name": "Example Store", "email": "shop@example.com"},
		"reply_to": {"email": "help@example.com"},
		"personalizations": [{
			"to": [{"name": "Ann Lee", "email": "ann@example.com"}],
			"dynamic_template_data": {
				"customer": {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"},
				"items": [{"title": "Trail Runner", "price": "$54.00", "quantity": 1}],
				"recovery_url": "https://example.com/cart/recover",
				"step": 1
			}
		}],
		"template_id": "d-0123456789abcdef",
		"headers": {
			"List-Unsubscribe": "<https://nudge.example.com/u/tok>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"
		},
		"categories": ["cart-abandonment", "step-1"],
		"custom_args": {"nudge_send_id": "5e1d", "nudge_rule": "cart-abandonment", "nudge_step": "1"},
		"asm": {"group_id": 42}
	}`, string(got.body))
}

func TestSenderPostsLocalContent(t *testing.T) {
	rec, srv := newSendServer(t)
	s := NewSender(SenderConfig{APIKey: "k", APIBase: srv.URL + "/"})
	m := connectors.Message{
		SendID:  "s2",
		To:      connectors.Address{Email: "bo@example.com"},
		From:    connectors.Address{Email: "shop@example.com"},
		Subject: "Your cart",
		HTML:    "<p>Trail &amp; Runner</p>",
		Text:    "Trail & Runner",
		Tags:    []string{"winback", "step-2", "winback"},
	}
	_, err := s.Send(context.Background(), m)
	require.NoError(t, err)
	require.Len(t, rec.requests, 1)
	assert.Equal(t, "/v3/mail/send", rec.requests[0].path)
	assert.JSONEq(t, `{
		"from": {"email": "shop@example.com"},
		"subject": "Your cart",
		"personalizations": [{"to": [{"email": "bo@example.com"}]}],
		"content": [
			{"type": "text/plain", "value": "Trail & Runner"},
			{"type": "text/html", "value": "<p>Trail &amp; Runner</p>"}
		],
		"categories": ["winback", "step-2"],
		"custom_args": {"nudge_send_id": "s2"}
	}`, string(rec.requests[0].body))
}

func TestSenderMapsStatuses(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		resp      cannedResponse
		retryable bool
		after     time.Duration
		permanent bool
		errText   string
	}{
		{
			name:      "400 is permanent with the error messages",
			resp:      cannedResponse{status: 400, body: `{"errors":[{"message":"The from email does not contain a valid address.","field":"from.email","help":null}]}`},
			permanent: true,
			errText:   "from.email: The from email does not contain a valid address.",
		},
		{
			name:      "401 is permanent",
			resp:      cannedResponse{status: 401, body: `{"errors":[{"message":"authorization required","field":null}]}`},
			permanent: true,
			errText:   "authorization required",
		},
		{
			name:      "413 is permanent",
			resp:      cannedResponse{status: 413, body: `{"errors":[{"message":"content too large"}]}`},
			permanent: true,
			errText:   "content too large",
		},
		{
			name:      "429 with Retry-After seconds",
			resp:      cannedResponse{status: 429, header: map[string]string{"Retry-After": "30"}, body: `{"errors":[{"message":"too many requests"}]}`},
			retryable: true,
			after:     30 * time.Second,
			errText:   "too many requests",
		},
		{
			name:      "429 with Retry-After date",
			resp:      cannedResponse{status: 429, header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}},
			retryable: true,
			after:     90 * time.Second,
		},
		{
			name:      "429 with X-RateLimit-Reset",
			resp:      cannedResponse{status: 429, header: map[string]string{"X-RateLimit-Reset": strconv.FormatInt(now.Add(45*time.Second).Unix(), 10), "X-RateLimit-Remaining": "0"}},
			retryable: true,
			after:     45 * time.Second,
		},
		{
			name:      "429 without hints",
			resp:      cannedResponse{status: 429},
			retryable: true,
		},
		{
			name:      "500 is retryable",
			resp:      cannedResponse{status: 500, body: "oops"},
			retryable: true,
			errText:   "oops",
		},
		{
			name:      "503 is retryable",
			resp:      cannedResponse{status: 503},
			retryable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newSendServer(t, tt.resp)
			s := NewSender(SenderConfig{APIKey: "k", APIBase: srv.URL, Clock: clock.NewFake(now)})
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

func TestSenderTransportFailuresAreRetryable(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := NewSender(SenderConfig{APIKey: "k", APIBase: url}).Send(context.Background(), templateMessage())
		var re *connectors.RetryableError
		require.ErrorAs(t, err, &re)
	})
	t.Run("deadline", func(t *testing.T) {
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(block) })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := NewSender(SenderConfig{APIKey: "k", APIBase: srv.URL}).Send(ctx, templateMessage())
		var re *connectors.RetryableError
		require.ErrorAs(t, err, &re)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestSenderRejectsUnsendableMessages(t *testing.T) {
	rec, srv := newSendServer(t)
	s := NewSender(SenderConfig{APIKey: "k", APIBase: srv.URL})
	tests := []struct {
		name string
		edit func(*connectors.Message)
	}{
		{"no recipient", func(m *connectors.Message) { m.To.Email = "" }},
		{"no from", func(m *connectors.Message) { m.From.Email = "" }},
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
	assert.Empty(t, rec.requests, "nothing may reach the provider")
}

func TestCategoriesLimits(t *testing.T) {
	var tags []string
	for i := range 12 {
		tags = append(tags, "t"+strconv.Itoa(i))
	}
	tags = append([]string{"t0", " ", string(make([]byte, 300))}, tags...)
	got := categories(tags)
	assert.Len(t, got, 10)
	assert.Equal(t, "t0", got[0])
	assert.Len(t, got[1], 255)
}

// TestSenderKeepsConnectionsWarmBetweenBatches: a batch of due steps
// makes its calls all at once. The sender's client must keep those
// connections for the next batch, where Go's default transport would
// keep 2 and open (and TLS-handshake) the rest again.
func TestSenderKeepsConnectionsWarmBetweenBatches(t *testing.T) {
	accept := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Message-Id", "m")
		w.WriteHeader(http.StatusAccepted)
	})
	first, second := connectortest.ConnectionsPerBurst(t, 32, accept, func(url string) func(int) error {
		s := NewSender(SenderConfig{APIKey: "SG.k", APIBase: url})
		return func(i int) error {
			m := connectors.Message{SendID: fmt.Sprintf("s%d", i), To: connectors.Address{Email: "a@example.com"}, From: connectors.Address{Email: "shop@example.com"}, Subject: "hi", Text: "hi"}
			_, err := s.Send(context.Background(), m)
			return err
		}
	})
	if second > 2 {
		t.Errorf("the second batch opened %d new connections (the first %d); want the first batch's reused", second, first)
	}
}
