package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/sending"
	"github.com/nudge-email/nudge/storage"
)

const testToken = "s3cret-admin-token"

// funnel is what a seeded rule's overview row must read.
type funnel struct {
	started, sent, delivered, opened, clicked, converted int
	revenue                                              string
}

// scenario is a small shop's day: customers from several sources, two
// rules with sent and held-out journeys, engagement fed through the real
// sending.Dispatcher (so machine opens and attribution follow its rules),
// and one dead send.
type scenario struct {
	now    time.Time
	clk    *clock.Fake
	db     *storage.DB
	d      *sending.Dispatcher
	want   map[string]funnel
	deadID string
	// customer is a profile with a timeline, a journey trace and a
	// decision that did not start a journey.
	customer string
	// sources are the record sources seeded in the last 24 h.
	sources    map[string]int
	backtests  []string
	backtestMu sync.Mutex
}

func email(i int) string { return fmt.Sprintf("c%03d@example.com", i) }

// newScenario seeds the store. Times are relative to the real current
// minute so the browser's session cookie (which expires against the real
// clock) and the 24 h window agree.
func newScenario(t testing.TB) *scenario {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	s := &scenario{now: now, clk: clock.NewFake(now), sources: map[string]int{}}
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{Clock: s.clk, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s.db = db
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.d, err = sending.New(db, map[string]connectors.Sender{"log": logsender.New(t.TempDir(), logger)}, sending.Options{
		Policies:    config.Policies{AttributionWindow: config.Duration(5 * 24 * time.Hour)},
		TokenSecret: []byte("unsubscribe-secret"), PublicURL: "https://nudge.example.com",
		Stores: []config.Store{{ID: "main", Name: "Example Store", URL: "https://example.com", Currency: "USD"}},
		Clock:  s.clk, Logger: logger,
	})
	require.NoError(t, err)

	var recs []behavior.Record
	add := func(r behavior.Record) {
		recs = append(recs, r)
		s.sources[r.Source]++
	}
	// Each rule: journeys outside the holdout (0..sentN+extra), then held
	// out ones. Customer numbers: cart-abandonment 0..59, welcome 100..171.
	type plan struct {
		rule                               string
		base, treated, sent, held          int
		delivered, opened, machine, clicks int
		orders, heldOrders                 int
		dead                               bool
	}
	plans := []plan{
		{rule: "cart-abandonment", base: 0, treated: 40, sent: 36, held: 20, delivered: 30, opened: 20, machine: 5, clicks: 10, orders: 4, heldOrders: 2, dead: true},
		{rule: "welcome", base: 100, treated: 40, sent: 40, held: 32, delivered: 40, opened: 25, machine: 0, clicks: 15, orders: 12, heldOrders: 4},
	}
	s.want = map[string]funnel{
		"cart-abandonment": {started: 40, sent: 36, delivered: 30, opened: 20, clicked: 10, converted: 4, revenue: "$216.00"},
		"welcome":          {started: 40, sent: 40, delivered: 40, opened: 25, clicked: 15, converted: 12, revenue: "$648.00"},
	}
	for _, p := range plans {
		for i := 0; i < p.treated+p.held; i++ {
			n := p.base + i
			at := now.Add(-time.Duration(3*60+n) * time.Minute)
			add(behavior.Record{ID: fmt.Sprintf("view-%d", n), Kind: behavior.ProductViewed, Source: "web", At: at.Add(-10 * time.Minute), Email: email(n),
				Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400, ImageURL: "/admin/static/favicon.svg"}}})
			add(behavior.Record{ID: fmt.Sprintf("checkout-%d", n), Kind: behavior.CheckoutStarted, Source: "shopify", Store: "main", At: at, Email: email(n), Value: 5400, Currency: "USD",
				Items:   []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400, Quantity: 1}},
				Consent: &behavior.Consent{State: behavior.ConsentGranted, Level: "single_opt_in", CollectedFrom: "checkout"},
				Person:  &behavior.Person{FirstName: "Cust", LastName: fmt.Sprint(n)}})
			if n%7 == 0 {
				add(behavior.Record{ID: fmt.Sprintf("pay-%d", n), Kind: behavior.PaymentFailed, Source: "stripe", At: at.Add(-time.Minute), Email: email(n), Value: 5400, Currency: "USD"})
			}
		}
	}
	_, err = db.Append(ctx, storage.Ingest{Records: recs})
	require.NoError(t, err)

	for _, p := range plans {
		for i := 0; i < p.treated+p.held; i++ {
			n := p.base + i
			prof, err := db.ProfileByEmail(ctx, email(n))
			require.NoError(t, err)
			start := now.Add(-time.Duration(3*60+n) * time.Minute)
			held := i >= p.treated
			j := storage.Journey{
				ID: fmt.Sprintf("j-%s-%d", p.rule, n), Rule: p.rule, ProfileID: prof.ID, TriggerRecord: fmt.Sprintf("checkout-%d", n),
				Step: 1, Status: storage.JourneyCompleted, Holdout: held, StartedAt: start, UpdatedAt: start.Add(time.Hour),
				Trace: []storage.TraceEntry{
					{At: start, Step: 0, Action: "started", Detail: "checkout_started matched event.value >= 2000"},
				},
			}
			sendAt := start.Add(time.Hour)
			var snd *storage.Send
			switch {
			case held:
				j.Trace = append(j.Trace, storage.TraceEntry{At: sendAt, Step: 1, Action: "held", Detail: "holdout: recorded, never sent"})
				snd = &storage.Send{Status: storage.SendHeld, Reason: "holdout"}
			case i < p.sent:
				j.Trace = append(j.Trace, storage.TraceEntry{At: sendAt, Step: 1, Action: "sent", Detail: "template d-cart-1 via log"})
				snd = &storage.Send{Status: storage.SendSent, SentAt: sendAt, ProviderMessageID: fmt.Sprintf("log-%s-%d", p.rule, n)}
			case i == p.sent && p.dead:
				j.Trace = append(j.Trace, storage.TraceEntry{At: sendAt, Step: 1, Action: "dead", Detail: "provider rejected the message"})
				snd = &storage.Send{Status: storage.SendDead, Attempts: 8, LastError: "550 mailbox unavailable", Message: []byte(`{"subject":"You left something"}`)}
			default:
				j.Status, j.Reason = storage.JourneyExited, "order_placed before step 1"
				j.Trace = append(j.Trace, storage.TraceEntry{At: start.Add(30 * time.Minute), Step: 1, Action: "exited", Detail: "exit event order_placed"})
			}
			require.NoError(t, db.PutJourney(ctx, j))
			if snd == nil {
				continue
			}
			snd.ID = sending.SendID(j.ID, 1)
			snd.JourneyID, snd.Rule, snd.Step, snd.ProfileID, snd.Email, snd.Provider = j.ID, p.rule, 1, prof.ID, email(n), "log"
			snd.CreatedAt, snd.UpdatedAt = sendAt, sendAt
			_, _, err = db.CreateSend(ctx, *snd)
			require.NoError(t, err)
			if snd.Status == storage.SendDead {
				s.deadID = snd.ID
			}
			engage := func(kind behavior.Kind, k int, machine bool) {
				r := behavior.Record{ID: fmt.Sprintf("%s-%s-%d-%d", kind, p.rule, n, k), Kind: kind, Source: "sendgrid", At: sendAt.Add(time.Duration(k+1) * time.Minute), Email: email(n)}
				r.SetRef(behavior.RefSendID, snd.ID)
				if machine {
					r.SetRef(behavior.RefMachineOpen, "true")
				}
				_, err := db.Append(ctx, storage.Ingest{Records: []behavior.Record{r}})
				require.NoError(t, err)
				s.sources[r.Source]++
				require.NoError(t, s.d.Observe(ctx, r, prof))
			}
			if held {
				if i-p.treated < p.heldOrders {
					s.order(t, prof, n, sendAt.Add(2*time.Hour))
				}
				continue
			}
			if i >= p.sent {
				continue
			}
			if i < p.delivered {
				engage(behavior.EmailDelivered, 0, false)
			}
			if i < p.opened {
				engage(behavior.EmailOpened, 1, false)
				engage(behavior.EmailOpened, 2, false) // a second open counts once
			} else if i < p.opened+p.machine {
				engage(behavior.EmailOpened, 1, true)
			}
			if i < p.clicks {
				engage(behavior.EmailClicked, 3, false)
			}
			if i < p.orders {
				s.order(t, prof, n, sendAt.Add(90*time.Minute))
			}
		}
	}
	s.customer = email(0)
	prof, err := db.ProfileByEmail(ctx, s.customer)
	require.NoError(t, err)
	require.NoError(t, db.AppendDecision(ctx, prof.ID, storage.Decision{
		At: now.Add(-30 * time.Minute), Rule: "cart-abandonment", RecordID: "checkout-again-0", Reason: "re-entry limit: last journey started less than 7d ago",
	}))
	require.NoError(t, db.SetScores(ctx, prof.ID, map[string]float64{"p_alive": 0.87, "clv_365d": 12400, "next_order_at": float64(now.Add(72 * time.Hour).Unix())}, "champions", now))
	return s
}

// order stores an order and lets the dispatcher attribute it.
func (s *scenario) order(t testing.TB, p storage.Profile, n int, at time.Time) {
	t.Helper()
	ctx := context.Background()
	r := behavior.Record{ID: fmt.Sprintf("order-%d", n), Kind: behavior.OrderPlaced, Source: "shopify", Store: "main", At: at, Email: email(n), Value: 5400, Currency: "USD",
		Items: []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400, Quantity: 1}}}
	_, err := s.db.Append(ctx, storage.Ingest{Records: []behavior.Record{r}})
	require.NoError(t, err)
	s.sources[r.Source]++
	require.NoError(t, s.d.Observe(ctx, r, p))
}

// options wires the admin page to the scenario the way app does: the
// dispatcher's stats, retry and discard, a catalog-backed recommender and
// a backtest that records its calls.
func (s *scenario) options(public string) Options {
	return Options{
		Store: s.db, Token: testToken, PublicURL: public, Clock: s.clk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Connectors: []ConnectorInfo{
			{Source: "shopify", Store: "main", URL: "https://nudge.example.com/webhooks/shopify/main", Topics: []string{"checkouts/create", "orders/create"}},
			{Source: "stripe", URL: "https://nudge.example.com/webhooks/stripe"},
			{Source: "sendgrid", URL: "https://nudge.example.com/webhooks/sendgrid"},
		},
		RulesFunc: func(context.Context) ([]RuleInfo, error) {
			return []RuleInfo{
				{ID: "cart-abandonment", File: "rules.d/cart-abandonment.yaml", Description: "Remind shoppers who started checkout and did not buy.", Trigger: "checkout_started where event.value >= 2000", Steps: 2, Holdout: 0.1, Priority: 10},
				{ID: "welcome", File: "rules.d/welcome.yaml", Description: "Welcome new subscribers.", Trigger: "customer_updated", Steps: 1, Holdout: 0.4},
				{ID: "winback", File: "rules.d/winback.yaml", Trigger: "became_inactive", Steps: 1},
				{File: "rules.d/broken.yaml", Error: "rules.d/broken.yaml:3:9: unknown field \"trigers\""},
			}, nil
		},
		RuleStatsFunc: func(ctx context.Context) (map[string]RuleStats, error) {
			st, err := s.d.RuleStats(ctx)
			if err != nil {
				return nil, err
			}
			out := map[string]RuleStats{}
			for id, r := range st {
				out[id] = RuleStats{Sent: r.Sent, Delivered: r.Delivered, Opened: r.Opened, Clicked: r.Clicked,
					Converted: r.Converted, Revenue: r.Revenue, Held: r.Held, HeldConverted: r.HeldConverted}
			}
			return out, nil
		},
		BacktestFunc: func(_ context.Context, rule string, since time.Duration) (string, error) {
			s.backtestMu.Lock()
			s.backtests = append(s.backtests, rule)
			s.backtestMu.Unlock()
			return fmt.Sprintf("rule %s since %s: would start 40 journeys, step 1 would send 36", rule, since), nil
		},
		RetrySendFunc: func(ctx context.Context, id string) error {
			_, err := s.d.RetrySend(ctx, id)
			return err
		},
		DiscardSendFunc: func(ctx context.Context, id string) error {
			_, err := s.d.DiscardSend(ctx, id)
			return err
		},
		RecommendFunc: func(ctx context.Context, _ string, n int) ([]storage.Product, error) {
			var out []storage.Product
			err := s.db.ScanProducts(ctx, func(p storage.Product) error {
				if len(out) < n {
					out = append(out, p)
				}
				return nil
			})
			return out, err
		},
	}
}

// server mounts a new Admin on a gin engine behind an httptest server.
func (s *scenario) server(t testing.TB, edit ...func(*Options)) (*httptest.Server, *Admin) {
	t.Helper()
	gin.SetMode(gin.TestMode)
	srv := httptest.NewUnstartedServer(nil)
	opts := s.options("http://" + srv.Listener.Addr().String())
	for _, e := range edit {
		e(&opts)
	}
	a, err := New(opts)
	require.NoError(t, err)
	r := gin.New()
	a.Register(r)
	srv.Config.Handler = r
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, a
}
