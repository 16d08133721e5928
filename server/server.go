// Package server is nudge's HTTP surface (gin): webhooks, tracking and
// unsubscribe routes mounted by their packages, health and metrics, and
// the admin JSON API. Handlers stay thin: read the body with a limit, hand
// it to a connector, store, answer JSON.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/storage"
)

// Webhook binds a receiver to its route: /webhooks/{source} or, for
// stores, /webhooks/{source}/{store}.
type Webhook struct {
	Source   string
	Store    string // "" for Stripe, SendGrid, Mailgun
	Receiver connectors.Receiver
}

// Hooks are the optional parts of the admin API that live in other
// packages; a nil hook answers 501 with an explanation.
type Hooks struct {
	// ReloadRules re-reads the rule files; it returns the load errors.
	ReloadRules func(ctx context.Context) error
	// Explain returns the explain trace of a profile (rule "" = all).
	Explain func(ctx context.Context, profileID, rule string) (any, error)
	// Rules lists rules with their counts.
	Rules func(ctx context.Context) (any, error)
	// Insights returns the fitted model report.
	Insights func(ctx context.Context, asOf time.Time) (any, error)
	// Import backfills r, in req's format (records-ndjson by default).
	Import func(ctx context.Context, req ImportRequest, r io.Reader) (any, error)
	// Recommend returns a profile's recommendations.
	Recommend func(ctx context.Context, profileID string, n int) (any, error)
	// Forget erases a person everywhere, including outside the store (the
	// log provider's files); nil uses Store.Forget alone.
	Forget func(ctx context.Context, p storage.Profile) error
	// RetrySend and DiscardSend act on dead sends.
	RetrySend   func(ctx context.Context, id string) error
	DiscardSend func(ctx context.Context, id string) error
}

// Options configure the server.
type Options struct {
	Store    storage.Store
	Webhooks []Webhook
	// Mounts add public routes owned by other packages (tracking,
	// unsubscribe).
	Mounts []func(gin.IRouter)
	// AdminToken guards /admin and /api; it must not be empty.
	AdminToken string
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// TrustedProxies are the proxies whose forwarding headers name the
	// client (gin's Engine.SetTrustedProxies); nil trusts none.
	TrustedProxies []string
	// Ready reports whether the scheduler runs; nil = always ready.
	Ready func() error
	// OnIngest is told about every stored ingest (to wake the scheduler).
	OnIngest func(storage.AppendResult)
	// OnWebhook is told the outcome of every webhook delivery (the admin
	// page's per-connector health).
	OnWebhook func(source, outcome string, at time.Time)
	// Admin mounts the admin page under /admin; it authenticates itself.
	Admin  func(r gin.IRouter)
	Hooks  Hooks
	Clock  clock.Clock
	Logger *slog.Logger
	// Registry receives the server's metrics (default: a new registry).
	Registry *prometheus.Registry
	// Backup streams a snapshot; nil uses Store.Backup.
	Version string
}

// Server holds the router and its dependencies.
type Server struct {
	opts    Options
	router  *gin.Engine
	metrics *metrics
	hooks   map[string]Webhook // "source" or "source/store"
}

// New builds the router.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("server: no store")
	}
	if opts.AdminToken == "" {
		return nil, errors.New("server: admin token is empty")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, hooks: map[string]Webhook{}}
	s.metrics = newMetrics(opts.Registry, opts.Store)
	s.metrics.onWebhook = opts.OnWebhook
	for _, w := range opts.Webhooks {
		key := w.Source
		if w.Store != "" {
			key += "/" + w.Store
		}
		if _, dup := s.hooks[key]; dup {
			return nil, errors.New("server: duplicate webhook route " + key)
		}
		s.hooks[key] = w
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// gin trusts every proxy by default: any client could then pick the
	// address rate limits see with its own X-Forwarded-For.
	if err := r.SetTrustedProxies(opts.TrustedProxies); err != nil {
		return nil, fmt.Errorf("server: trusted proxies: %w", err)
	}
	r.HandleMethodNotAllowed = true
	r.Use(s.recoverJSON(), s.requestLog())
	r.NoRoute(func(c *gin.Context) { jsonError(c, http.StatusNotFound, "not found") })
	r.NoMethod(func(c *gin.Context) { jsonError(c, http.StatusMethodNotAllowed, "method not allowed") })

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})))

	wh := r.Group("/webhooks")
	wh.POST("/:source", s.webhook)
	wh.POST("/:source/:store", s.webhook)

	for _, m := range opts.Mounts {
		m(r)
	}

	if opts.Admin != nil {
		opts.Admin(r)
	}
	api := r.Group("/api/v1", s.requireToken())
	s.mountAPI(api)
	s.router = r
	return s, nil
}

// Handler is the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.router }

// Routes lists every registered route (method and path), so tests can walk
// them and check authentication.
func (s *Server) Routes() []gin.RouteInfo { return s.router.Routes() }

func (s *Server) readyz(c *gin.Context) {
	// A tiny read proves the store is open without walking it (Stats
	// does, which is too slow for a probe on a large store).
	if _, _, err := s.opts.Store.NextJobDue(c.Request.Context()); err != nil {
		jsonError(c, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			jsonError(c, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// requireToken accepts "Authorization: Bearer <token>" (the scheme in any
// case, RFC 7235), comparing SHA-256 digests in constant time so neither
// the token's bytes nor its length leak through timing.
func (s *Server) requireToken() gin.HandlerFunc {
	want := sha256.Sum256([]byte(s.opts.AdminToken))
	return func(c *gin.Context) {
		got := ""
		if scheme, tok, ok := strings.Cut(strings.TrimSpace(c.GetHeader("Authorization")), " "); ok && strings.EqualFold(scheme, "Bearer") {
			got = strings.TrimSpace(tok)
		}
		sum := sha256.Sum256([]byte(got))
		if got == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="nudge"`)
			jsonError(c, http.StatusUnauthorized, "admin token required")
			c.Abort()
			return
		}
		c.Next()
	}
}

func jsonError(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

func (s *Server) recoverJSON() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				s.opts.Logger.Error("handler panic", "path", c.FullPath(), "panic", r)
				jsonError(c, http.StatusInternalServerError, "internal error")
			}
		}()
		c.Next()
	}
}

// requestLog logs one line per request: the route pattern rather than the
// raw path, so emails in paths never reach the log.
func (s *Server) requestLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		lvl := slog.LevelDebug
		if c.Writer.Status() >= 500 {
			lvl = slog.LevelError
		} else if c.Writer.Status() >= 400 {
			lvl = slog.LevelInfo
		}
		s.opts.Logger.Log(c.Request.Context(), lvl, "http request",
			"method", c.Request.Method, "route", route, "status", c.Writer.Status(),
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "bytes_in", c.Request.ContentLength)
	}
}

// ImportRequest describes a POST /api/v1/import body, from its query:
// ?file=NAME&line=N&format=F&store=ID.
type ImportRequest struct {
	// File labels the report's errors: the file the client read, else
	// "request".
	File string
	// FirstLine is the number of the body's first line in that file
	// (default 1): `nudge import` sends a large records-ndjson file in
	// pieces, and its errors must name the file's lines.
	FirstLine int
	// Format is one of importer.Formats(); "" for records-ndjson.
	Format string
	// Store is the configured store a CSV export comes from ("" for the
	// only one of its platform).
	Store string
}
