// Package admin is nudge's admin page: server-rendered HTML (html/template)
// with embedded static assets and charts drawn as inline SVG, so the binary
// serves it with no JavaScript build and no CDN.
//
// It shows what nudge is doing and earning (overview), the rules with a
// backtest button, customers with their timeline and explain trace, the
// outbox with retry and discard for dead sends, and per-connector webhook
// health. Everything it cannot read from storage.Store comes in as a
// function in Options, so the package depends only on storage and
// behavior; an unset function shows "not available" rather than failing.
package admin

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

// ConnectorInfo describes one configured webhook source for the health
// page.
type ConnectorInfo struct {
	// Source is the connector name as passed to Health.Observe
	// ("shopify", "stripe", …).
	Source string
	// Store is the store id for store platforms, "" otherwise.
	Store string
	// URL is the exact webhook URL to paste into the provider's panel.
	URL string
	// Topics lists what to subscribe to, when the connector says.
	Topics []string
}

// RuleInfo is one loaded rule (or one rule file that failed to load).
type RuleInfo struct {
	// ID is the rule id; "" for a file that failed before an id was read.
	ID string
	// File is the rule file, as the config's globs found it.
	File string
	// Description is the rule's own description.
	Description string
	// Trigger is the trigger event, with its where clause if any.
	Trigger string
	// Steps counts the rule's steps.
	Steps int
	// Holdout is the control-group share (0.1 = 10 %).
	Holdout float64
	// Priority breaks ties under the frequency cap.
	Priority int
	// Error is the check error; "" means the rule loaded and validated.
	Error string
}

// RuleStats are one rule's outbox counts as the sender keeps them.
type RuleStats struct {
	// Sent counts sends that went out.
	Sent      int
	Delivered int // sends with at least one delivery event
	Opened    int // sends opened by a person (machine opens excluded)
	Clicked   int
	// Converted counts orders attributed to the rule's sends and Revenue
	// their value in minor units of Options.Currency.
	Converted int
	Revenue   int64
	// Held counts holdout sends; HeldConverted the orders that followed
	// them within the attribution window.
	Held          int
	HeldConverted int
	// SentConverted counts orders that followed a sent message within the
	// window, clicked or not: the sent arm measured like the held arm.
	// Zero with Sent > 0 falls back to Converted (older stats sources).
	SentConverted int
}

// Options configure the admin page. Store and Token are required; every
// function may be nil.
type Options struct {
	// Store is where everything shown comes from.
	Store storage.Store
	// Token is the admin token (config admin.token).
	Token string
	// PublicURL is the server's public base URL; it decides the cookie's
	// Secure flag (see Secure).
	PublicURL string
	// Secure forces the Secure flag on the session cookie. Without it the
	// flag is still set unless PublicURL is plain http on a loopback host,
	// the one case where a browser would not send it back.
	Secure bool
	// Currency formats revenue (default USD).
	Currency string
	// Clock tells the time (default clock.Real); Logger receives
	// internal errors (default slog.Default()).
	Clock  clock.Clock
	Logger *slog.Logger
	// Health collects webhook outcomes (default: a new collector that
	// nothing feeds). Wire Health.Observe to server.Options.OnWebhook.
	Health *Health
	// Connectors are the configured webhook sources, for the health page.
	Connectors []ConnectorInfo
	// RulesFunc lists the loaded rules with their check status.
	RulesFunc func(ctx context.Context) ([]RuleInfo, error)
	// RuleStatsFunc returns the outbox counts per rule id.
	RuleStatsFunc func(ctx context.Context) (map[string]RuleStats, error)
	// BacktestFunc replays the stored history since now-since through one
	// rule without sending and returns a text report.
	BacktestFunc func(ctx context.Context, ruleID string, since time.Duration) (string, error)
	// RetrySendFunc puts a dead send back in the outbox; DiscardSendFunc
	// gives up on it.
	RetrySendFunc   func(ctx context.Context, id string) error
	DiscardSendFunc func(ctx context.Context, id string) error
	// RecommendFunc returns up to n products for a profile.
	RecommendFunc func(ctx context.Context, profileID string, n int) ([]storage.Product, error)
	// CacheTTL is how long overview aggregates are reused (default 30 s).
	CacheTTL time.Duration
}

// Admin serves the admin page. It is safe for concurrent use.
type Admin struct {
	opts   Options
	secure bool
	pages  map[string]*template.Template
	static fs.FS
	assets map[string]string // file name → content hash, for cache busting
	auth   *authenticator
	cache  overviewCache
	search searchLimiter
}

// New checks the options and parses the embedded templates.
func New(opts Options) (*Admin, error) {
	if opts.Store == nil {
		return nil, errors.New("admin: no store")
	}
	if opts.Token == "" {
		return nil, errors.New("admin: empty admin token")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Currency == "" {
		opts.Currency = "USD"
	}
	if opts.Health == nil {
		opts.Health = NewHealth()
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 30 * time.Second
	}
	static, assets, err := loadStatic()
	if err != nil {
		return nil, err
	}
	a := &Admin{
		opts:   opts,
		secure: opts.Secure || !loopbackHTTP(opts.PublicURL),
		static: static,
		assets: assets,
		auth:   newAuthenticator(opts.Token, opts.Clock),
	}
	if a.pages, err = parsePages(a.funcs()); err != nil {
		return nil, err
	}
	return a, nil
}

// loopbackHTTP reports a plain-http URL on a loopback host: the only
// setup where a Secure cookie would never come back.
func loopbackHTTP(public string) bool {
	u, err := url.Parse(public)
	if err != nil || u.Scheme != "http" {
		return false
	}
	switch h := u.Hostname(); h {
	case "localhost", "127.0.0.1", "::1":
		return true
	default:
		return strings.HasPrefix(h, "127.")
	}
}

// Health returns the webhook collector, to wire to server.Options.OnWebhook.
func (a *Admin) Health() *Health { return a.opts.Health }

// Register mounts the admin routes under /admin on r.
func (a *Admin) Register(r gin.IRouter) {
	g := r.Group("/admin", a.securityHeaders)
	g.GET("/login", a.loginPage)
	g.POST("/login", a.loginPost)
	g.GET("/static/*filepath", a.serveStatic)

	p := g.Group("", a.requireAuth)
	p.POST("/logout", a.logout)
	p.GET("", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/admin/") })
	p.GET("/", a.overviewPage)
	p.GET("/rules", a.rulesPage)
	p.POST("/rules/:id/backtest", a.backtest)
	p.GET("/customers", a.customersPage)
	p.GET("/customers/:email", a.profilePage)
	p.GET("/outbox", a.outboxPage)
	p.POST("/outbox/:id/retry", a.sendAction("retry"))
	p.POST("/outbox/:id/discard", a.sendAction("discard"))
	p.GET("/health", a.healthPage)
}

// securityHeaders keep the pages from being framed, sniffed or cached, and
// allow scripts and styles only from our own static files. Images may come
// from the shop (product pictures in recommendations).
func (a *Admin) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.Next()
}

// view is what every page template receives.
type view struct {
	Title  string
	Nav    string
	CSRF   string
	Now    time.Time
	Flash  string
	Error  string
	Data   any
	Assets map[string]string
}

// render executes a page into a buffer first, so a template error becomes
// a clean 500 instead of half a page.
func (a *Admin) render(c *gin.Context, status int, name string, v view) {
	t := a.pages[name]
	if t == nil {
		a.fail(c, errors.New("no template "+name))
		return
	}
	v.CSRF = a.auth.csrfFor(c)
	v.Now = a.opts.Clock.Now().UTC()
	v.Assets = a.assets
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// fail logs an internal error and answers a plain 500; the details stay in
// the log because they may name customers.
func (a *Admin) fail(c *gin.Context, err error) {
	a.opts.Logger.Error("admin page failed", "route", c.FullPath(), "error", err)
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error; see the server log\n"))
	c.Abort()
}

// searchLimiter bounds concurrent full-profile scans: a substring search
// walks every profile, and a few at once are enough to saturate the disk.
type searchLimiter struct {
	once sync.Once
	sem  chan struct{}
}

func (s *searchLimiter) acquire(ctx context.Context) (func(), error) {
	s.once.Do(func() { s.sem = make(chan struct{}, 2) })
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
