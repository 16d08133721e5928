// Package web is nudge's own collection path for storefront and app
// behavior: an HTTP API compatible with Segment's Tracking API (/v1/track,
// identify, page, screen, alias, group, batch), so analytics.js, Segment
// or RudderStack SDKs and shop servers can send events unchanged, and the
// dependency-free storefront script served at GET /t.js.
//
// Calls become behavior records (product_viewed, searched, page_viewed …
// or custom:<event name>) written through storage.Store.Append; an
// identify carrying both the browser's anonymous id and an email is what
// lets the store merge earlier anonymous browsing into the profile.
//
// Abuse and privacy are handled here: per-IP and per-key rate limits
// (the IP only ever as a keyed hash in memory), known bots dropped, the
// Global Privacy Control header honoured, an opt-in consent mode, and no
// IP address ever written to a record.
package web

import (
	"compress/gzip"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

// Config is what the tracking endpoints need from nudge's configuration
// (tracking.*, secret, public_url and the store).
type Config struct {
	// WriteKey authenticates calls: the basic-auth user (Segment style) or
	// "writeKey" in the body (beacons cannot set headers). Required.
	WriteKey string
	// AllowedOrigins are the storefront origins browsers may call from
	// ("https://shop.example"); "*" allows any origin.
	AllowedOrigins []string
	// RequireConsent stores nothing from a call unless it carries consent
	// (context.consent.categoryPreferences analytics or marketing true).
	RequireConsent bool
	// RatePerIP and RatePerKey are calls per second, with bursts of 4×.
	// Zero means the defaults (20 per IP, 500 per key); negative, no limit.
	RatePerIP, RatePerKey float64
	// MaxBatchBytes limits /v1/batch bodies (default 500 KB, Segment's).
	MaxBatchBytes int
	// TokenSecret verifies nudge_id link tokens (SignIdentity).
	TokenSecret []byte
	// PublicURL is where nudge is reachable; /t.js falls back to it for
	// its endpoint when the page cannot tell the script's own origin.
	PublicURL string
	// StoreID is the store records are attributed to.
	StoreID string
	// Currency is assumed when a call names none (default USD, Segment's).
	Currency string
	// BotUserAgents overrides DefaultBotUserAgents (lower-case
	// substrings); an empty non-nil slice drops no one.
	BotUserAgents []string
}

// Defaults used for zero Config fields.
const (
	DefaultRatePerIP  = 20
	DefaultRatePerKey = 500
)

// Options are the handler's collaborators.
type Options struct {
	Clock  clock.Clock  // default clock.Real
	Logger *slog.Logger // default slog.Default()
}

// Appender is the part of storage.Store the handler writes through;
// every storage.Store is one.
type Appender interface {
	Append(ctx context.Context, in storage.Ingest) (storage.AppendResult, error)
}

// Handler serves the tracking API and the storefront script. It is safe
// for concurrent use.
type Handler struct {
	cfg     Config
	store   Appender
	clock   clock.Clock
	log     *slog.Logger
	norm    normalizer
	origins origins
	bots    []string
	perIP   *limiters
	perKey  *limiters
	ips     ipHasher
	script  script
}

// New checks cfg and returns a Handler writing to store.
func New(cfg Config, store Appender, opts Options) (*Handler, error) {
	if strings.TrimSpace(cfg.WriteKey) == "" {
		return nil, errors.New("web: tracking.write_key is empty")
	}
	if store == nil {
		return nil, errors.New("web: nil store")
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = MaxBatchBytes
	}
	if cfg.Currency == "" {
		cfg.Currency = "USD"
	}
	if cfg.RatePerIP == 0 {
		cfg.RatePerIP = DefaultRatePerIP
	}
	if cfg.RatePerKey == 0 {
		cfg.RatePerKey = DefaultRatePerKey
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	bots := DefaultBotUserAgents()
	if cfg.BotUserAgents != nil {
		bots = make([]string, len(cfg.BotUserAgents))
		for i, b := range cfg.BotUserAgents {
			bots[i] = strings.ToLower(b)
		}
	}
	sc, err := newScript(scriptConfig{RequireConsent: cfg.RequireConsent, Endpoint: strings.TrimSuffix(cfg.PublicURL, "/")})
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return &Handler{
		cfg:     cfg,
		store:   store,
		clock:   opts.Clock,
		log:     opts.Logger.With("source", Source),
		norm:    normalizer{storeID: cfg.StoreID, currency: cfg.Currency, tokenSecret: cfg.TokenSecret},
		origins: newOrigins(cfg.AllowedOrigins),
		bots:    bots,
		perIP:   newLimiters(cfg.RatePerIP),
		perKey:  newLimiters(cfg.RatePerKey),
		ips:     newIPHasher(),
		script:  sc,
	}, nil
}

// Routes maps each route under /v1/ that Register mounts (POST and
// OPTIONS) to the call type it receives. "import" is the older name of
// batch; the one-letter routes are where analytics.js posts (its apiHost
// plus the first letter of the call type, "b" for batches).
func Routes() map[string]string {
	r := map[string]string{"batch": "batch", "import": "batch", "b": "batch"}
	for _, t := range []string{TypeTrack, TypeIdentify, TypePage, TypeScreen, TypeAlias, TypeGroup} {
		r[t] = t
		r[t[:1]] = t
	}
	return r
}

// Register mounts POST and OPTIONS /v1/<call> for every route of Routes,
// and GET/HEAD /t.js, on r. Mount it on the root router (or a group
// without a prefix): Segment clients append /v1/<call> to their host.
func (h *Handler) Register(r gin.IRouter) {
	for path, typ := range Routes() {
		typ := typ
		r.POST("/v1/"+path, func(c *gin.Context) { h.serveCall(c, typ) })
		r.OPTIONS("/v1/"+path, h.preflight)
	}
	r.GET("/t.js", h.serveScript)
	r.HEAD("/t.js", h.serveScript)
}

// RegisterOff mounts the tracking routes for a server whose config has
// no tracking.write_key: the tracking API is off, and every call gets a
// 404 saying so rather than nudge refusing to start (a shop without a
// storefront script needs no key).
func RegisterOff(r gin.IRouter) {
	off := func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusNotFound, answer{Error: "tracking is off: set tracking.write_key in the config"})
	}
	for path := range Routes() {
		r.POST("/v1/"+path, off)
		r.OPTIONS("/v1/"+path, off)
	}
	r.GET("/t.js", off)
	r.HEAD("/t.js", off)
}

// answer is the JSON body of every /v1 response. success:true is
// Segment's answer; the rest is ours and ignored by Segment clients.
type answer struct {
	Success  bool        `json:"success,omitempty"`
	Error    string      `json:"error,omitempty"`
	Stored   int         `json:"stored,omitempty"`
	Dropped  int         `json:"dropped,omitempty"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

func (h *Handler) fail(c *gin.Context, status int, err error) {
	c.AbortWithStatusJSON(status, answer{Error: err.Error()})
}

func (h *Handler) preflight(c *gin.Context) {
	origin := c.GetHeader("Origin")
	h.origins.setHeaders(c.Writer.Header(), origin)
	if !h.origins.allowed(origin) {
		h.fail(c, http.StatusForbidden, fmt.Errorf("origin %q is not in tracking.allowed_origins", origin))
		return
	}
	setPreflight(c.Writer.Header())
	c.Status(http.StatusNoContent)
}

// serveCall handles one /v1/<typ> request: read with Segment's size
// limits, parse, authenticate, rate-limit, apply privacy filters,
// normalize, store, answer.
func (h *Handler) serveCall(c *gin.Context, typ string) {
	now := h.clock.Now().UTC()
	origin := c.GetHeader("Origin")
	h.origins.setHeaders(c.Writer.Header(), origin)
	if !h.origins.allowed(origin) {
		h.fail(c, http.StatusForbidden, fmt.Errorf("origin %q is not in tracking.allowed_origins", origin))
		return
	}
	limit := MaxEventBytes
	if typ == "batch" {
		limit = h.cfg.MaxBatchBytes
	}
	body, err := readBody(c.Request, limit)
	if err != nil {
		h.fail(c, http.StatusBadRequest, err)
		return
	}

	var (
		msgs     []Message
		rejected []Rejection
		bodyKey  string
	)
	if typ == "batch" {
		var b Batch
		b, msgs, rejected, err = ParseBatch(body, limit)
		bodyKey = b.WriteKey
	} else {
		var m Message
		m, err = ParseMessage(body, typ)
		bodyKey = m.WriteKey
		if err == nil {
			msgs = []Message{m}
		}
	}
	if err != nil {
		h.fail(c, http.StatusBadRequest, err)
		return
	}
	if bodyKey == "" && typ == "batch" && len(msgs) > 0 {
		// analytics.js puts the key in every call of a batch rather than
		// beside it: all of them must carry the right one.
		bodyKey = msgs[0].WriteKey
		for _, m := range msgs[1:] {
			if m.WriteKey != bodyKey {
				bodyKey = ""
				break
			}
		}
	}
	if err := h.authenticate(c.Request, bodyKey); err != nil {
		c.Header("WWW-Authenticate", `Basic realm="nudge tracking"`)
		h.fail(c, http.StatusUnauthorized, err)
		return
	}
	n := len(msgs) + len(rejected)
	if !h.perIP.allow(h.ips.hash(c.ClientIP()), n, now) {
		h.tooMany(c, h.perIP, "this address")
		return
	}
	if !h.perKey.allow(h.cfg.WriteKey, n, now) {
		h.tooMany(c, h.perKey, "this write key")
		return
	}

	res := answer{Success: true, Rejected: rejected}
	if c.GetHeader("Sec-GPC") == "1" {
		// Global Privacy Control: the visitor opted out of tracking;
		// answer like Segment so the client does not retry, keep nothing.
		res.Dropped = len(msgs)
		c.Header("X-Nudge-Dropped", "gpc")
		c.JSON(http.StatusOK, res)
		return
	}
	ua := c.GetHeader("User-Agent")
	records := make([]behavior.Record, 0, len(msgs))
	for i, m := range msgs {
		if isBot(h.bots, ua, str(m.Context, "userAgent")) {
			res.Dropped++
			continue
		}
		if cs := consentOf(m.Context); cs == consentDenied || (cs == consentUnknown && h.cfg.RequireConsent) {
			res.Dropped++
			continue
		}
		rec, err := h.norm.record(m, now)
		if err != nil {
			if typ != "batch" {
				h.fail(c, http.StatusBadRequest, err)
				return
			}
			res.Rejected = append(res.Rejected, Rejection{Index: batchIndex(i, rejected), Error: err.Error()})
			continue
		}
		records = append(records, rec)
	}
	sort.Slice(res.Rejected, func(i, j int) bool { return res.Rejected[i].Index < res.Rejected[j].Index })
	if len(records) == 0 && res.Dropped == 0 && len(res.Rejected) > 0 {
		h.fail(c, http.StatusBadRequest, fmt.Errorf("no call in the batch is valid; first: #%d: %s", res.Rejected[0].Index, res.Rejected[0].Error))
		return
	}
	if len(records) > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 10*time.Second)
		out, err := h.store.Append(ctx, storage.Ingest{Records: records})
		cancel()
		if errors.Is(err, storage.ErrInvalid) {
			// Nothing was stored (Append is atomic): the caller sent
			// something the store refuses, and retrying cannot help.
			h.fail(c, http.StatusBadRequest, err)
			return
		}
		if err != nil {
			h.log.Error("store tracking calls", "error", err, "records", len(records))
			h.fail(c, http.StatusInternalServerError, errors.New("could not store the calls; retry"))
			return
		}
		res.Stored = len(out.New)
	}
	if res.Dropped > 0 {
		c.Header("X-Nudge-Dropped", strconv.Itoa(res.Dropped))
	}
	c.JSON(http.StatusOK, res)
}

// batchIndex maps the i-th parsed call back to its index in the posted
// batch, skipping the calls rejected while parsing.
func batchIndex(i int, parseRejected []Rejection) int {
	idx := i
	for _, r := range parseRejected {
		if r.Index <= idx {
			idx++
		}
	}
	return idx
}

func (h *Handler) tooMany(c *gin.Context, l *limiters, who string) {
	secs := int(l.retryAfter().Round(time.Second) / time.Second)
	c.Header("Retry-After", strconv.Itoa(secs))
	c.Header("X-RateLimit-Reset", strconv.Itoa(secs))
	h.fail(c, http.StatusTooManyRequests, fmt.Errorf("rate limit exceeded for %s; retry after %ds", who, secs))
}

// authenticate accepts the write key as the basic-auth user (the password
// is ignored, as in Segment) or as writeKey in the body.
func (h *Handler) authenticate(r *http.Request, bodyKey string) error {
	key := bodyKey
	if user, _, ok := r.BasicAuth(); ok {
		key = user
	}
	if key == "" {
		return fmt.Errorf("%w: send it as the basic-auth user or as \"writeKey\" in the body", ErrUnauthorized)
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(h.cfg.WriteKey)) != 1 {
		return ErrUnauthorized
	}
	return nil
}

// readBody reads at most limit bytes of the (possibly gzipped, as mobile
// SDKs send) body; one byte more is the over-limit error Segment answers
// with 400.
func readBody(r *http.Request, limit int) ([]byte, error) {
	var src io.Reader = r.Body
	if strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(io.LimitReader(r.Body, int64(limit)+1))
		if err != nil {
			return nil, fmt.Errorf("%w: bad gzip body: %v", ErrInvalid, err)
		}
		defer zr.Close()
		src = zr
	}
	body, err := io.ReadAll(io.LimitReader(src, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", ErrInvalid, err)
	}
	if len(body) > limit {
		return nil, fmt.Errorf("%w: body over the %d byte limit", ErrTooLarge, limit)
	}
	return body, nil
}

type consentState int

const (
	consentUnknown consentState = iota
	consentGranted
	consentDenied
)

// consentOf reads Segment's consent object,
// context.consent.categoryPreferences: tracking for email journeys counts
// as granted when the analytics or marketing category is true, denied when
// the categories are given and none of those is.
func consentOf(ctx map[string]any) consentState {
	prefs := obj(obj(ctx, "consent"), "categoryPreferences")
	if prefs == nil {
		return consentUnknown
	}
	seen := false
	for k, v := range prefs {
		switch strings.ToLower(k) {
		case "analytics", "marketing":
			seen = true
			if b, _ := v.(bool); b {
				return consentGranted
			}
		}
	}
	if seen {
		return consentDenied
	}
	return consentUnknown
}
