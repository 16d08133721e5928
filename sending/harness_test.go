package sending

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/storage"
)

var _ storage.Store = (*storage.DB)(nil)

// t0 is a Monday afternoon in UTC: outside quiet hours in Paris (15:00)
// and New York (09:00).
var t0 = time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)

// sgServer is a fake SendGrid Mail Send endpoint that records requests
// and answers with canned responses (202 once they run out).
type sgServer struct {
	mu        sync.Mutex
	bodies    [][]byte
	responses []sgResponse
	srv       *httptest.Server
}

type sgResponse struct {
	status int
	header map[string]string
	body   string
}

func (s *sgServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	n := len(s.bodies)
	resp := sgResponse{status: http.StatusAccepted, header: map[string]string{"X-Message-Id": "sg-msg-" + string(rune('0'+n%10))}}
	if len(s.responses) > 0 {
		resp, s.responses = s.responses[0], s.responses[1:]
	}
	s.mu.Unlock()
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.status)
	_, _ = io.WriteString(w, resp.body)
}

func (s *sgServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

// body decodes request i.
func (s *sgServer) body(t *testing.T, i int) map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Greater(t, len(s.bodies), i)
	var m map[string]any
	require.NoError(t, json.Unmarshal(s.bodies[i], &m))
	return m
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Fake
	path  string
	db    *storage.DB
	sched *scheduler.Scheduler
	d     *Dispatcher
	sg    *sgServer
	opts  Options
	logs  *bytes.Buffer
}

// newHarness opens a real store in a temp dir, a scheduler on a fake
// clock, a SendGrid sender against a fake server and the log sender.
func newHarness(t *testing.T, edit ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), clk: clock.NewFake(t0), logs: &bytes.Buffer{}}
	h.sg = &sgServer{}
	h.sg.srv = httptest.NewServer(h.sg)
	t.Cleanup(h.sg.srv.Close)
	dir := t.TempDir()
	h.path = filepath.Join(dir, "nudge.db")
	h.opts = Options{
		Policies: config.Policies{
			RequireConsent: true,
			FrequencyCap:   config.FrequencyCap{Max: 2, Per: config.Duration(24 * time.Hour)},
			QuietHours:     config.QuietHours{Start: "21:00", End: "08:00"},
		},
		Timezone:        time.UTC,
		From:            connectors.Address{Email: "shop@example.com", Name: "Example Store"},
		PublicURL:       "https://nudge.example.com/",
		TokenSecret:     []byte("test-secret"),
		Stores:          []config.Store{{ID: "main", Name: "Example Store", URL: "https://example.com", Currency: "USD"}},
		DefaultProvider: "sendgrid",
		Clock:           h.clk,
		Logger:          slog.New(slog.NewTextHandler(h.logs, nil)),
		BackoffFunc:     func(attempt int) time.Duration { return time.Duration(attempt) * time.Minute },
	}
	for _, e := range edit {
		e(&h.opts)
	}
	h.open()
	return h
}

// open (re)opens the store and builds a fresh scheduler and dispatcher,
// as a process start does.
func (h *harness) open() {
	h.t.Helper()
	db, err := storage.Open(h.path, storage.Options{Clock: h.clk, NoSync: true})
	require.NoError(h.t, err)
	h.db = db
	h.t.Cleanup(func() { _ = db.Close() })
	h.sched = scheduler.New(db, scheduler.Options{Clock: h.clk, Backoff: func(int) time.Duration { return time.Second }})
	senders := map[string]connectors.Sender{
		"sendgrid": sendgrid.NewSender(sendgrid.SenderConfig{APIKey: "SG.k", APIBase: h.sg.srv.URL, Clock: h.clk}),
		"log":      logsender.New(filepath.Join(filepath.Dir(h.path), "mail"), h.opts.Logger),
	}
	d, err := New(db, senders, h.opts)
	require.NoError(h.t, err)
	h.d = d
	d.Register(h.sched)
}

// profile stores a customer and returns the profile.
func (h *harness) profile(email, consent, tz string) storage.Profile {
	h.t.Helper()
	r := behavior.Record{
		Kind: behavior.CustomerUpdated, Source: "shopify", Store: "main", At: h.clk.Now().Add(-48 * time.Hour), Email: email,
		Person: &behavior.Person{FirstName: "Ann", LastName: "Lee", Timezone: tz},
	}
	if consent != "" {
		r.Consent = &behavior.Consent{State: consent}
	}
	h.append(r)
	p, err := h.db.ProfileByEmail(h.ctx, email)
	require.NoError(h.t, err)
	return p
}

func (h *harness) append(rs ...behavior.Record) []behavior.Record {
	h.t.Helper()
	res, err := h.db.Append(h.ctx, storage.Ingest{Records: rs})
	require.NoError(h.t, err)
	return res.New
}

// checkout stores a checkout_started trigger at `at`.
func (h *harness) checkout(email string, at time.Time) behavior.Record {
	h.t.Helper()
	r := behavior.Record{
		ID: behavior.DeriveID("test", "checkout", email, at.String()), Kind: behavior.CheckoutStarted, Source: "shopify", Store: "main",
		At: at, Email: email, Value: 5400, Currency: "USD",
		Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", URL: "https://example.com/p/trail", ImageURL: "https://cdn.example.com/trail.jpg", Price: 5400, Quantity: 1}},
		Refs:  map[string]string{behavior.RefRecoveryURL: "https://example.com/checkouts/abc/recover"},
	}
	return h.append(r)[0]
}

// step builds the StepSend the engine would hand over now.
func (h *harness) step(p storage.Profile, trigger behavior.Record, journeyID string, n int) dispatch.StepSend {
	return dispatch.StepSend{
		Journey: storage.Journey{ID: journeyID, Rule: "cart-abandonment", ProfileID: p.ID, TriggerRecord: trigger.ID, Step: n, Status: storage.JourneyWaiting},
		Rule:    "cart-abandonment",
		Step:    n,
		Send:    dispatch.SendSpec{Template: "d-0123456789abcdef", Data: map[string]any{"discount_code": "WELCOME10"}},
		Trigger: trigger,
		Profile: p,
		Now:     h.clk.Now(),
	}
}

func (h *harness) dispatch(s dispatch.StepSend) dispatch.Outcome {
	h.t.Helper()
	out, err := h.d.Dispatch(h.ctx, s)
	require.NoError(h.t, err)
	return out
}

func (h *harness) runDue() int {
	h.t.Helper()
	n, err := h.sched.RunDue(h.ctx, h.clk.Now())
	require.NoError(h.t, err)
	return n
}

func (h *harness) send(id string) storage.Send {
	h.t.Helper()
	s, err := h.db.Send(h.ctx, id)
	require.NoError(h.t, err)
	return s
}

// queued dispatches a consenting customer's checkout reminder and
// returns its send id.
func (h *harness) queued(email string) (string, storage.Profile) {
	h.t.Helper()
	p := h.profile(email, behavior.ConsentGranted, "")
	tr := h.checkout(email, h.clk.Now().Add(-time.Hour))
	out := h.dispatch(h.step(p, tr, "j-"+email, 1))
	require.Equal(h.t, dispatch.Queued, out.Action, out.Reason)
	return out.SendID, p
}
