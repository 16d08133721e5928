// Package app assembles nudge from a Config: the store, connectors,
// scheduler, journey engine, dispatcher, senders, insights and the HTTP
// server, and runs them until shutdown. It holds wiring only; every
// decision lives in the packages it wires.
package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/connectors/stripe"
	"github.com/nudge-email/nudge/connectors/web"
	"github.com/nudge-email/nudge/connectors/woocommerce"
	"github.com/nudge-email/nudge/scheduler"
	"github.com/nudge-email/nudge/server"
	"github.com/nudge-email/nudge/storage"
)

// Options adjust a build beyond the config (tests, CLI flags).
type Options struct {
	Clock    clock.Clock
	Logger   *slog.Logger
	Version  string
	Registry *prometheus.Registry
}

// App is a built nudge instance.
type App struct {
	Config    *config.Config
	Store     *storage.DB
	Scheduler *scheduler.Scheduler
	Server    *server.Server
	Logger    *slog.Logger
	Clock     clock.Clock

	parts *parts // the engine, dispatcher, insights: see wire.go
	mu    sync.Mutex
	// backfillQuiet is how long after an import's last records the
	// models are refitted (runRefits); tests shorten it.
	backfillQuiet time.Duration
}

// Open builds everything from cfg and opens the store. Close releases it.
func Open(ctx context.Context, cfg *config.Config, opts Options) (*App, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	keepRaw := true
	if cfg.Storage.KeepRaw != nil {
		keepRaw = *cfg.Storage.KeepRaw
	}
	// max_batch_delay: 0 turns holding groups off; the store's own zero
	// means its default.
	holdGroups := cfg.Storage.MaxBatchDelay.D()
	if holdGroups <= 0 {
		holdGroups = -1
	}
	st, err := storage.OpenDir(cfg.DataDir, storage.Options{
		KeepRaw: keepRaw, MaxBatchDelay: holdGroups,
		Clock: opts.Clock, Logger: opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Store: st, Logger: opts.Logger, Clock: opts.Clock, backfillQuiet: backfillQuiet}
	sm := newSchedulerMetrics(opts.Registry)
	// 128 workers: due steps run in batches of up to 64 (one claim),
	// each holding a worker per step, and two batches in flight keep the
	// writer busy while the other plans or delivers (bench/sched:
	// 5,500-5,750 steps/s against 3,500 with 64; 256 gained nothing).
	// It also bounds what a crash can catch mid-call (those sends become
	// "unknown") and the provider calls made at once. The evaluation of incoming records stays at 16: more of them at once
	// took CPU and the writer from the webhooks (bench/run.sh, orders at
	// c=64: ~1,400/s with 64 against ~1,600/s with 16). While webhooks
	// queue at the writer, evaluation drops to one at a time for up to a
	// minute per record and catches up after the burst (bench/README.md,
	// "Evaluation gives way").
	a.Scheduler = scheduler.New(st, scheduler.Options{
		Clock: opts.Clock, Logger: opts.Logger, OnFinish: sm.observe,
		Workers: 128, Limits: map[string]int{storage.JobEvaluate: 16},
		Yields: map[string]scheduler.Yield{storage.JobEvaluate: {Busy: st.IngestBusy, Limit: 1, MaxLag: time.Minute}},
	})
	if err := a.wire(ctx, opts); err != nil {
		st.Close()
		return nil, err
	}
	hooks, err := a.Receivers()
	if err != nil {
		st.Close()
		return nil, err
	}
	trackingRoutes := web.RegisterOff
	if strings.TrimSpace(cfg.Tracking.WriteKey) == "" {
		opts.Logger.Warn("tracking API off: tracking.write_key is not set")
	} else {
		webh, err := web.New(web.Config{
			WriteKey: cfg.Tracking.WriteKey, AllowedOrigins: cfg.Tracking.AllowedOrigins,
			RequireConsent: cfg.Tracking.RequireConsent, RatePerIP: unlimitedIfZero(cfg.Tracking.RatePerIP), RatePerKey: unlimitedIfZero(cfg.Tracking.RatePerKey),
			TokenSecret: TokenSecret(cfg), PublicURL: cfg.PublicURL, StoreID: firstStoreID(cfg), Currency: firstCurrency(cfg),
		}, ingestNotifier{DB: st, wake: a.Scheduler.Wake}, web.Options{Clock: opts.Clock, Logger: opts.Logger})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("tracking: %w", err)
		}
		trackingRoutes = webh.Register
	}
	mounts := []func(gin.IRouter){trackingRoutes}
	mounts = append(mounts, a.parts.mounts...)
	adm, health, err := a.buildAdmin(hooks)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	srv, err := server.New(server.Options{
		Admin: adm.Register, OnWebhook: health.Observe,
		Store: st, Webhooks: hooks, Mounts: mounts, AdminToken: cfg.Admin.Token,
		MaxBodyBytes: cfg.MaxBodyBytes, TrustedProxies: cfg.TrustedProxies, Ready: a.ready,
		OnIngest: func(storage.AppendResult) { a.Scheduler.Wake() },
		Hooks:    a.parts.hooks, Clock: opts.Clock, Logger: opts.Logger, Registry: opts.Registry, Version: opts.Version,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	a.Server = srv
	opts.Registry.MustRegister(newStateCollector(a))
	return a, nil
}

// ingestNotifier wakes the scheduler after tracking writes, as the server
// does for webhooks, so evaluation starts at once.
type ingestNotifier struct {
	*storage.DB
	wake func()
}

func (n ingestNotifier) Append(ctx context.Context, in storage.Ingest) (storage.AppendResult, error) {
	res, err := n.DB.Append(ctx, in)
	if err == nil && len(res.New) > 0 {
		n.wake()
	}
	return res, err
}

// unlimitedIfZero maps the config's "0 = unlimited" (the loader fills in
// the default when the key is absent) to the tracking handler's negative
// "no limit" (its zero means "default").
func unlimitedIfZero(rate float64) float64 {
	if rate == 0 {
		return -1
	}
	return rate
}

func firstStoreID(cfg *config.Config) string {
	if len(cfg.Stores) > 0 {
		return cfg.Stores[0].ID
	}
	return ""
}

func firstCurrency(cfg *config.Config) string {
	if len(cfg.Stores) > 0 && cfg.Stores[0].Currency != "" {
		return cfg.Stores[0].Currency
	}
	return "USD"
}

// TokenSecret is the key for unsubscribe and identify tokens: config
// `secret`, else derived from the admin token so links survive restarts.
func TokenSecret(cfg *config.Config) []byte {
	if cfg.Secret != "" {
		return []byte(cfg.Secret)
	}
	m := hmac.New(sha256.New, []byte(cfg.Admin.Token))
	m.Write([]byte("nudge token secret v1"))
	return m.Sum(nil)
}

// Receivers builds one webhook receiver per configured source. SendGrid
// and Mailgun without configured keys verify with dev keys from the data
// dir (see devkeys.go).
func (a *App) Receivers() ([]server.Webhook, error) {
	cfg := a.Config
	var hooks []server.Webhook
	for _, s := range cfg.Stores {
		var r connectors.Receiver
		switch s.Platform {
		case "shopify":
			r = shopify.New(shopify.Config{StoreID: s.ID, Secret: s.WebhookSecret, PreviousSecret: s.PreviousWebhookSecret, Currency: s.Currency, StoreURL: s.URL})
		case "woocommerce":
			r = woocommerce.New(woocommerce.Config{StoreID: s.ID, Secret: s.WebhookSecret, PreviousSecret: s.PreviousWebhookSecret, Currency: s.Currency, StoreURL: s.URL})
		default:
			return nil, fmt.Errorf("store %s: unknown platform %q", s.ID, s.Platform)
		}
		hooks = append(hooks, server.Webhook{Source: s.Platform, Store: s.ID, Receiver: r})
	}
	if cfg.Stripe.WebhookSecret != "" {
		storeID := ""
		if s, ok := cfg.StripeStore(); ok {
			storeID = s.ID
		}
		hooks = append(hooks, server.Webhook{Source: "stripe", Receiver: stripe.New(stripe.Config{
			Secret: cfg.Stripe.WebhookSecret, PreviousSecret: cfg.Stripe.PreviousWebhookSecret, StoreID: storeID,
		})})
	}
	esp, err := a.espReceivers()
	if err != nil {
		return nil, err
	}
	return append(hooks, esp...), nil
}

func (a *App) ready() error {
	select {
	case <-a.Scheduler.Running():
		return nil
	default:
		return errors.New("scheduler not running")
	}
}

// Close closes the store.
func (a *App) Close() error { return a.Store.Close() }

// Serve runs the HTTP server and the scheduler until ctx ends or SIGTERM,
// reloading rules on SIGHUP; then it stops accepting requests, lets
// in-flight ones finish (up to 30 s), stops the scheduler after its
// running jobs, and returns. The caller closes the App.
func (a *App) Serve(ctx context.Context, listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	hs := &http.Server{
		Handler:           a.Server.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      5 * time.Minute, // backups stream
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn),
	}
	schedCtx, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	schedDone := make(chan error, 1)
	go func() { schedDone <- a.Scheduler.Run(schedCtx) }()
	bg := a.startBackground(schedCtx)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-schedCtx.Done():
				return
			case <-hup:
				if err := a.ReloadRules(schedCtx); err != nil {
					a.Logger.Error("rules reload failed; keeping the previous rules", "error", err)
				}
			}
		}
	}()

	srvErr := make(chan error, 1)
	go func() { srvErr <- hs.Serve(ln) }()
	a.Logger.Info("nudge serving", "listen", ln.Addr().String(), "data_dir", a.Config.DataDir, "provider", a.Config.Email.Provider)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srvErr:
		runErr = err
	}
	a.Logger.Info("nudge shutting down: draining requests")
	shCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(shCtx); err != nil {
		a.Logger.Warn("http shutdown", "error", err)
	}
	stopSched()
	if err := <-schedDone; err != nil && runErr == nil {
		runErr = err
	}
	bg.Wait()
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// DataPath is a file inside the data dir.
func (a *App) DataPath(name string) string { return filepath.Join(a.Config.DataDir, name) }
