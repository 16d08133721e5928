package sending_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/sending"
	"github.com/nudge-email/nudge/server"
	"github.com/nudge-email/nudge/storage"
)

const e2eRule = `id: cart-abandonment
description: Remind shoppers who started checkout and did not buy.
trigger:
  event: checkout_started
exit:
  - event: order_placed
  - event: unsubscribed
steps:
  - wait: 1h
    send:
      template: d-0123456789abcdef
`

// mailSendServer is the SendGrid Mail Send API as a test server.
type mailSendServer struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (m *mailSendServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v3/mail/send" || r.Header.Get("Authorization") != "Bearer SG.e2e" {
		http.Error(w, `{"errors":[{"message":"bad request line"}]}`, http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	m.bodies = append(m.bodies, b)
	m.mu.Unlock()
	w.Header().Set("X-Message-Id", "e2e-message")
	w.WriteHeader(http.StatusAccepted)
}

func (m *mailSendServer) sends() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.bodies...)
}

type pipeline struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Fake
	db    *storage.DB
	sched *scheduler.Scheduler
	http  http.Handler
	mail  *mailSendServer
}

// newPipeline wires what `nudge serve` wires, on a fake clock: the HTTP
// server with the Shopify receiver and unsubscribe routes, the store, the
// journey engine, the sending dispatcher and the SendGrid sender.
func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	gin.SetMode(gin.TestMode)
	p := &pipeline{t: t, ctx: context.Background(), clk: clock.NewFake(time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)), mail: &mailSendServer{}}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sg := httptest.NewServer(p.mail)
	t.Cleanup(sg.Close)

	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{Clock: p.clk, Logger: logger, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	p.db = db

	store := config.Store{ID: "main", Platform: "shopify", Name: "Example Store", URL: "https://example.com", Currency: "USD", WebhookSecret: "shpss_e2e"}
	cfg := config.Default()
	cfg.Stores = []config.Store{store}
	cfg.Email.Provider = "sendgrid"
	cfg.Email.SendGrid.APIKey, cfg.Email.SendGrid.APIBase = "SG.e2e", sg.URL
	opts, err := sending.OptionsFromConfig(cfg)
	require.NoError(t, err)
	opts.TokenSecret, opts.Clock, opts.Logger = []byte("e2e secret"), p.clk, logger
	senders, err := sending.NewSenders(cfg.Email, t.TempDir(), logger)
	require.NoError(t, err)
	senders["sendgrid"] = sendgrid.NewSender(sendgrid.SenderConfig{APIKey: "SG.e2e", APIBase: sg.URL, Clock: p.clk})
	disp, err := sending.New(db, senders, opts)
	require.NoError(t, err)

	rs, err := rules.Parse([]byte(e2eRule), "cart-abandonment.yaml")
	require.NoError(t, err)
	set, err := rules.NewSet(rs...)
	require.NoError(t, err)
	eng := journey.New(db, disp, journey.Options{Clock: p.clk, Logger: logger, Observers: []dispatch.Observer{disp}, Stores: cfg.Stores})
	eng.SetRules(set)

	p.sched = scheduler.New(db, scheduler.Options{Clock: p.clk, Logger: logger})
	disp.Register(p.sched)
	eng.Register(p.sched)

	srv, err := server.New(server.Options{
		Store:      db,
		Webhooks:   []server.Webhook{{Source: "shopify", Store: "main", Receiver: shopify.New(shopify.Config{StoreID: "main", Secret: store.WebhookSecret, Currency: "USD", StoreURL: store.URL})}},
		Mounts:     []func(gin.IRouter){disp.RegisterRoutes},
		AdminToken: "admin",
		OnIngest:   func(storage.AppendResult) { p.sched.Wake() },
		Clock:      p.clk,
		Logger:     logger,
	})
	require.NoError(t, err)
	p.http = srv.Handler()
	return p
}

// webhook posts a signed Shopify webhook, as Shopify does, and returns
// it for redelivery.
func (p *pipeline) webhook(topic, email string) ([]byte, http.Header) {
	p.t.Helper()
	body, h, err := shopify.Sample(topic, email, p.clk.Now())
	require.NoError(p.t, err)
	h.Set(shopify.HeaderHmac, shopify.Sign("shpss_e2e", body))
	p.post(body, h)
	return body, h
}

func (p *pipeline) post(body []byte, h http.Header) {
	p.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/shopify/main", bytes.NewReader(body))
	req.Header = h.Clone()
	w := httptest.NewRecorder()
	p.http.ServeHTTP(w, req)
	require.Equal(p.t, http.StatusOK, w.Code, w.Body.String())
}

// advance moves the clock in small steps, running what is due.
func (p *pipeline) advance(d time.Duration) {
	p.t.Helper()
	end := p.clk.Now().Add(d)
	for {
		_, err := p.sched.RunDue(p.ctx, p.clk.Now())
		require.NoError(p.t, err)
		if !p.clk.Now().Before(end) {
			return
		}
		p.clk.Advance(time.Minute)
	}
}

func TestEndToEndAbandonedCheckoutGetsOneReminder(t *testing.T) {
	p := newPipeline(t)
	hookBody, hookHeader := p.webhook("checkouts/create", "ann@example.com")
	p.advance(59 * time.Minute)
	require.Empty(t, p.mail.sends(), "sent before the hour")
	p.advance(2 * time.Minute)

	sends := p.mail.sends()
	require.Len(t, sends, 1)
	var body struct {
		Personalizations []struct {
			To   []connectors.Address `json:"to"`
			Data map[string]any       `json:"dynamic_template_data"`
		} `json:"personalizations"`
		TemplateID string            `json:"template_id"`
		Headers    map[string]string `json:"headers"`
		CustomArgs map[string]string `json:"custom_args"`
	}
	require.NoError(t, json.Unmarshal(sends[0], &body))
	require.Len(t, body.Personalizations, 1)
	pers := body.Personalizations[0]
	assert.Equal(t, "ann@example.com", pers.To[0].Email)
	assert.Equal(t, "d-0123456789abcdef", body.TemplateID)
	items := pers.Data["items"].([]any)
	require.NotEmpty(t, items)
	first := items[0].(map[string]any)
	assert.Equal(t, "IPod Nano - 8GB - Red", first["title"])
	assert.Equal(t, "$199.00", first["price"])
	assert.True(t, strings.HasPrefix(pers.Data["recovery_url"].(string), "https://"), "recovery_url %v", pers.Data["recovery_url"])
	assert.Contains(t, pers.Data["recovery_url"], "/recover")
	assert.Equal(t, "List-Unsubscribe=One-Click", body.Headers["List-Unsubscribe-Post"])
	sendID := body.CustomArgs[connectors.ArgSendID]
	require.NotEmpty(t, sendID)

	s, err := p.db.Send(p.ctx, sendID)
	require.NoError(t, err)
	assert.Equal(t, storage.SendSent, s.Status)
	assert.Equal(t, "e2e-message", s.ProviderMessageID)

	// A redelivery of the webhook and a day more change nothing.
	p.post(hookBody, hookHeader)
	p.advance(24 * time.Hour)
	assert.Len(t, p.mail.sends(), 1)

	// The List-Unsubscribe link works one-click.
	u := strings.Trim(body.Headers["List-Unsubscribe"], "<>")
	req := httptest.NewRequest(http.MethodPost, u[strings.Index(u, "/u/"):], strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	p.http.ServeHTTP(w, req)
	assert.Equal(t, http.StatusOK, w.Code)
	_, suppressed, err := p.db.Suppressed(p.ctx, "ann@example.com")
	require.NoError(t, err)
	assert.True(t, suppressed)
}

func TestEndToEndOrderBeforeTheHourSendsNothing(t *testing.T) {
	p := newPipeline(t)
	_, _ = p.webhook("checkouts/create", "bo@example.com")
	p.advance(30 * time.Minute)
	_, _ = p.webhook("orders/create", "bo@example.com")
	p.advance(3 * time.Hour)
	assert.Empty(t, p.mail.sends())

	// Not vacuous: the journey started and the order ended it.
	prof, err := p.db.ProfileByEmail(p.ctx, "bo@example.com")
	require.NoError(t, err)
	js, err := p.db.JourneysByProfile(p.ctx, prof.ID)
	require.NoError(t, err)
	require.Len(t, js, 1)
	assert.Equal(t, storage.JourneyExited, js[0].Status)
}
