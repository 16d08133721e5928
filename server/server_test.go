package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/connectors/stripe"
	"github.com/nudge-email/nudge/server"
	"github.com/nudge-email/nudge/storage"
)

const (
	secret      = "shop-secret"
	stripeKey   = "whsec_test"
	adminToken  = "admin-token-for-tests"
	sampleEmail = "ann@example.com"
)

type fixture struct {
	srv   *server.Server
	store *storage.DB
	clock *clock.Fake
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fc := clock.NewFake(time.Now().UTC())
	st, err := storage.Open(filepath.Join(t.TempDir(), "nudge.db"), storage.Options{Clock: fc, KeepRaw: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Options{
		Store: st,
		Webhooks: []server.Webhook{
			{Source: "shopify", Store: "main", Receiver: shopify.New(shopify.Config{StoreID: "main", Secret: secret, Currency: "USD"})},
			{Source: "stripe", Receiver: stripe.New(stripe.Config{Secret: stripeKey})},
		},
		AdminToken:   adminToken,
		MaxBodyBytes: 64 << 10,
		Clock:        fc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, store: st, clock: fc}
}

func (f *fixture) do(t *testing.T, method, path string, body []byte, h http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func shopifyCheckout(t *testing.T, now time.Time) ([]byte, http.Header) {
	t.Helper()
	body, h, err := shopify.Sample("checkouts/create", sampleEmail, now)
	if err != nil {
		t.Fatal(err)
	}
	h.Set("X-Shopify-Hmac-Sha256", shopify.Sign(secret, body))
	return body, h
}

func countRecords(t *testing.T, st storage.Store) int {
	t.Helper()
	n := 0
	if err := st.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(behavior.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWebhookAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body, h := shopifyCheckout(t, f.clock.Now())

	tampered := bytes.Replace(body, []byte(sampleEmail), []byte("eve@example.com"), 1)
	unsigned := h.Clone()
	unsigned.Del("X-Shopify-Hmac-Sha256")
	big := append(bytes.Repeat([]byte(" "), 70<<10), body...)
	bigH := h.Clone()
	bigH.Set("X-Shopify-Hmac-Sha256", shopify.Sign(secret, big))

	cases := []struct {
		name   string
		path   string
		body   []byte
		h      http.Header
		status int
	}{
		{"tampered body", "/webhooks/shopify/main", tampered, h, http.StatusUnauthorized},
		{"missing signature", "/webhooks/shopify/main", body, unsigned, http.StatusUnauthorized},
		{"unknown store", "/webhooks/shopify/other", body, h, http.StatusNotFound},
		{"unknown source", "/webhooks/paypal", body, h, http.StatusNotFound},
		{"over the body limit", "/webhooks/shopify/main", big, bigH, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		rec := f.do(t, http.MethodPost, c.path, c.body, c.h)
		if rec.Code != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, rec.Code, c.status, rec.Body)
		}
		var e struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Errorf("%s: body %q is not a JSON error", c.name, rec.Body)
		}
	}
	if n := countRecords(t, f.store); n != 0 {
		t.Fatalf("rejected deliveries stored %d records", n)
	}

	// The same delivery five times, concurrently: 200 each, one record.
	var wg sync.WaitGroup
	codes := make(chan int, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- f.do(t, http.MethodPost, "/webhooks/shopify/main", body, h).Code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("delivery answered %d", c)
		}
	}
	if n := countRecords(t, f.store); n != 1 {
		t.Fatalf("5 deliveries stored %d records, want 1", n)
	}
	p, err := f.store.ProfileByEmail(context.Background(), sampleEmail)
	if err != nil {
		t.Fatal(err)
	}
	if p.Counts[behavior.CheckoutStarted] != 1 {
		t.Fatalf("profile counts %v", p.Counts)
	}
}

func TestStripeStaleIs400(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := f.clock.Now()
	body, h, err := stripe.Sample("checkout.session.expired", sampleEmail, now)
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Stripe-Signature", stripe.Sign(stripeKey, body, now.Add(-10*time.Minute)))
	if rec := f.do(t, http.MethodPost, "/webhooks/stripe", body, h); rec.Code != http.StatusBadRequest {
		t.Fatalf("stale: %d %s", rec.Code, rec.Body)
	}
	h.Set("Stripe-Signature", stripe.Sign(stripeKey, body, now))
	if rec := f.do(t, http.MethodPost, "/webhooks/stripe", body, h); rec.Code != http.StatusOK {
		t.Fatalf("fresh: %d %s", rec.Code, rec.Body)
	}
	if n := countRecords(t, f.store); n != 1 {
		t.Fatalf("stored %d records, want 1", n)
	}
}

func TestProfileAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body, h := shopifyCheckout(t, f.clock.Now())
	if rec := f.do(t, http.MethodPost, "/webhooks/shopify/main", body, h); rec.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
	}
	auth := http.Header{"Authorization": {"Bearer " + adminToken}}
	rec := f.do(t, http.MethodGet, "/api/v1/profiles/ANN@example.com", nil, auth)
	if rec.Code != http.StatusOK {
		t.Fatalf("profile: %d %s", rec.Code, rec.Body)
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"email", "consent", "timezone", "scores", "records", "journeys", "sends", "recommendations"} {
		if _, ok := v[k]; !ok {
			t.Errorf("profile JSON lacks %q", k)
		}
	}
	recs := v["records"].([]any)
	if len(recs) != 1 || recs[0].(map[string]any)["kind"] != "checkout_started" {
		t.Fatalf("records = %v", recs)
	}
	if rec := f.do(t, http.MethodGet, "/api/v1/profiles/nobody@example.com", nil, auth); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown profile: %d", rec.Code)
	}
	// Forget, then the profile is gone.
	if rec := f.do(t, http.MethodDelete, "/api/v1/profiles/ann@example.com", nil, auth); rec.Code != http.StatusOK {
		t.Fatalf("forget: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(t, http.MethodGet, "/api/v1/profiles/ann@example.com", nil, auth); rec.Code != http.StatusNotFound {
		t.Fatalf("after forget: %d", rec.Code)
	}
}

// Every admin API route refuses requests without the token, or with a
// wrong one.
func TestAPIRoutesRequireToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := 0
	for _, r := range f.srv.Routes() {
		if !strings.HasPrefix(r.Path, "/api/") && !strings.HasPrefix(r.Path, "/admin") {
			continue
		}
		n++
		path := strings.NewReplacer(":email", "ann@example.com", ":id", "x").Replace(r.Path)
		for _, h := range []http.Header{{}, {"Authorization": {"Bearer wrong"}}, {"Authorization": {adminToken}}} {
			rec := f.do(t, r.Method, path, nil, h)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s with %v: %d, want 401", r.Method, path, h, rec.Code)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d admin routes found", n)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if rec := f.do(t, http.MethodGet, p, nil, nil); rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	rec := f.do(t, http.MethodGet, "/metrics", nil, nil)
	// The store file's size, read with a stat of the file: never zero for
	// an open bbolt file.
	var size float64
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "nudge_store_bytes "); ok {
			var err error
			if size, err = strconv.ParseFloat(v, 64); err != nil {
				t.Fatalf("nudge_store_bytes %q: %v", v, err)
			}
		}
	}
	if size <= 0 {
		t.Errorf("nudge_store_bytes = %v, want the file's size", size)
	}
}

// TestCommitMetrics checks that /metrics reports the store's group commit
// as the store counted it: a stored webhook is one more commit carrying
// one more write, and the duration histogram holds every commit.
func TestCommitMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	scrape := func() map[string]float64 {
		t.Helper()
		rec := f.do(t, http.MethodGet, "/metrics", nil, nil)
		out := map[string]float64{}
		for _, line := range strings.Split(rec.Body.String(), "\n") {
			name, v, ok := strings.Cut(line, " ")
			if !ok || !strings.HasPrefix(name, "nudge_store_commit") {
				continue
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			out[name] = x
		}
		return out
	}
	before := scrape()
	for _, name := range []string{"nudge_store_commits_total", "nudge_store_commit_writes_total", "nudge_store_commit_pages_total", "nudge_store_commit_seconds_count", "nudge_store_commit_seconds_sum", "nudge_store_commit_holds_total", "nudge_store_commit_hold_seconds_total", "nudge_store_commit_spill_seconds_total", "nudge_store_commit_write_seconds_total"} {
		if _, ok := before[name]; !ok {
			t.Fatalf("/metrics has no %s: %v", name, before)
		}
	}
	body, h := shopifyCheckout(t, f.clock.Now())
	if rec := f.do(t, http.MethodPost, "/webhooks/shopify/main", body, h); rec.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
	}
	after := scrape()
	if d := after["nudge_store_commits_total"] - before["nudge_store_commits_total"]; d != 1 {
		t.Errorf("one stored webhook: %v more commits", d)
	}
	if d := after["nudge_store_commit_writes_total"] - before["nudge_store_commit_writes_total"]; d != 1 {
		t.Errorf("one stored webhook: %v more writes", d)
	}
	if after["nudge_store_commit_pages_total"] <= before["nudge_store_commit_pages_total"] {
		t.Errorf("pages %v → %v", before["nudge_store_commit_pages_total"], after["nudge_store_commit_pages_total"])
	}
	if after["nudge_store_commit_seconds_count"] != after["nudge_store_commits_total"] || after["nudge_store_commit_seconds_sum"] <= 0 {
		t.Errorf("histogram count %v sum %v, commits %v", after["nudge_store_commit_seconds_count"], after["nudge_store_commit_seconds_sum"], after["nudge_store_commits_total"])
	}
	if inf := after[`nudge_store_commit_seconds_bucket{le="+Inf"}`]; inf != after["nudge_store_commits_total"] {
		t.Errorf("+Inf bucket %v, commits %v", inf, after["nudge_store_commits_total"])
	}
	// Writing (with its fsyncs) took time, and it and spilling are parts
	// of the commits' summed duration.
	spill, write := after["nudge_store_commit_spill_seconds_total"], after["nudge_store_commit_write_seconds_total"]
	if write <= before["nudge_store_commit_write_seconds_total"] || spill+write > after["nudge_store_commit_seconds_sum"] {
		t.Errorf("spill %v s, write %v s (before %v s), of %v s", spill, write, before["nudge_store_commit_write_seconds_total"], after["nudge_store_commit_seconds_sum"])
	}
}

// A misspelt outbox status is a 400 naming the statuses, not an empty list.
func TestListSendsStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	auth := http.Header{"Authorization": {"Bearer " + adminToken}}
	if rec := f.do(t, http.MethodGet, "/api/v1/sends?status=sent", nil, auth); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"sends":[]`) {
		t.Errorf("status=sent: %d %s", rec.Code, rec.Body)
	}
	rec := f.do(t, http.MethodGet, "/api/v1/sends?status=snet", nil, auth)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unknown status") || !strings.Contains(rec.Body.String(), "retrying") {
		t.Errorf("status=snet: %d %s", rec.Code, rec.Body)
	}
}

// The client address the rate limits see: a client's own X-Forwarded-For
// is ignored unless it came through a configured proxy (the audit bypassed
// the tracking API's per-IP limit with a fresh header per request).
func TestClientIPTrustsOnlyConfiguredProxies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		proxies []string
		want    string
	}{
		{"no proxies trusted (default)", nil, "192.0.2.7"},
		{"request through a trusted proxy", []string{"192.0.2.0/24"}, "203.0.113.9"},
		{"another proxy is not trusted", []string{"198.51.100.1"}, "192.0.2.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			srv, err := server.New(server.Options{
				Store: f.store, AdminToken: adminToken, TrustedProxies: tc.proxies,
				Mounts: []func(gin.IRouter){func(r gin.IRouter) {
					r.GET("/ip", func(c *gin.Context) { c.String(http.StatusOK, c.ClientIP()) })
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/ip", nil)
			req.RemoteAddr = "192.0.2.7:4711"
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Real-IP", "203.0.113.9")
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			if got := rec.Body.String(); got != tc.want {
				t.Errorf("client IP %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := server.New(server.Options{AdminToken: adminToken, TrustedProxies: []string{"not-an-ip"}}); err == nil {
		t.Error("a bad proxy address was accepted")
	}
}

// The API takes the Bearer scheme in any case (RFC 7235: schemes are
// case-insensitive), and still refuses a wrong token however it is spelt.
func TestAPIBearerSchemeAnyCase(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"Bearer " + adminToken, http.StatusOK},
		{"bearer " + adminToken, http.StatusOK},
		{"BEARER  " + adminToken, http.StatusOK},
		{"bearer " + adminToken + "x", http.StatusUnauthorized},
		{"Basic " + adminToken, http.StatusUnauthorized},
		{adminToken, http.StatusUnauthorized},
	} {
		rec := f.do(t, http.MethodGet, "/api/v1/sends", nil, http.Header{"Authorization": {tc.auth}})
		if rec.Code != tc.want {
			t.Errorf("%q: %d, want %d", tc.auth, rec.Code, tc.want)
		}
	}
}
