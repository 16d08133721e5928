package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

func TestOverviewCache(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	var c overviewCache
	var calls atomic.Int32
	release := make(chan struct{})
	compute := func(context.Context) (*overview, error) {
		n := calls.Add(1)
		if n == 2 {
			<-release // the second computation is slow
		}
		return &overview{ComputedAt: t0.Add(time.Duration(n) * time.Minute), EventsTotal: int(n)}, nil
	}
	ctx := context.Background()
	o, err := c.get(ctx, t0, 30*time.Second, compute)
	require.NoError(t, err)
	require.Equal(t, 1, o.EventsTotal)
	// Fresh: reused.
	o, _ = c.get(ctx, t0.Add(time.Minute+10*time.Second), 30*time.Second, compute)
	require.Equal(t, 1, o.EventsTotal)
	require.EqualValues(t, 1, calls.Load())

	// Stale: one request recomputes, the others get the stale copy at once.
	later := t0.Add(5 * time.Minute)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		o, err := c.get(ctx, later, 30*time.Second, compute)
		require.NoError(t, err)
		require.Equal(t, 2, o.EventsTotal)
	}()
	require.Eventually(t, func() bool { return calls.Load() == 2 }, time.Second, time.Millisecond)
	for i := 0; i < 5; i++ {
		o, err := c.get(ctx, later, 30*time.Second, compute)
		require.NoError(t, err)
		require.Equal(t, 1, o.EventsTotal, "served stale while the refresh runs")
	}
	close(release)
	wg.Wait()
	require.EqualValues(t, 2, calls.Load())

	// After an admin action the next reader recomputes.
	c.invalidate()
	o, err = c.get(ctx, later, 30*time.Second, compute)
	require.NoError(t, err)
	require.Equal(t, 3, o.EventsTotal)

	// A failed computation keeps no result and reports the error.
	var fresh overviewCache
	_, err = fresh.get(ctx, t0, time.Second, func(context.Context) (*overview, error) { return nil, errors.New("disk on fire") })
	require.ErrorContains(t, err, "disk on fire")
}

// TestOverviewWithoutHooks checks the page degrades to what the store
// alone knows: the funnel up to clicks from the outbox, "—" for
// conversions, and no lift.
func TestOverviewWithoutHooks(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	srv, _ := s.server(t, func(o *Options) {
		o.RulesFunc, o.RuleStatsFunc, o.BacktestFunc, o.RetrySendFunc, o.DiscardSendFunc, o.RecommendFunc = nil, nil, nil, nil, nil, nil
	})
	code, body := get(t, srv.URL, "/admin/")
	require.Equal(t, http.StatusOK, code)
	for _, w := range []string{
		`data-rule="cart-abandonment" data-stage="sent">36<`,
		`data-rule="cart-abandonment" data-stage="delivered">30<`,
		`data-rule="cart-abandonment" data-stage="opened">20<`,
		`data-rule="cart-abandonment" data-stage="clicked">10<`,
		`data-rule="welcome" data-stage="clicked">15<`,
		"not available (no sender stats)",
	} {
		require.Contains(t, body, w)
	}
	require.Regexp(t, `data-stage="converted"><span class="muted" title="not available">—`, body)

	code, body = get(t, srv.URL, "/admin/rules")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "not available in this build")

	code, body = get(t, srv.URL, "/admin/customers/"+url.PathEscape(s.customer))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "not available in this build")

	code, body = get(t, srv.URL, "/admin/outbox")
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `data-action="retry" disabled`, body)
}

func post(t *testing.T, base, path string, form url.Values) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := noRedirect().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), b.String()
}

func TestSendActionsAndBacktest(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	srv, _ := s.server(t)
	ctx := context.Background()
	sent, err := s.db.ListSends(ctx, storage.SendSent, 1)
	require.NoError(t, err)
	tests := []struct {
		name     string
		path     string
		status   int
		location string
		body     string
		after    string // the send's status afterwards
		id       string
	}{
		{name: "retry a sent send is refused", path: "/admin/outbox/" + sent[0].ID + "/retry", status: http.StatusUnprocessableEntity, body: "Could not retry", id: sent[0].ID, after: storage.SendSent},
		{name: "retry an unknown send", path: "/admin/outbox/nope/retry", status: http.StatusNotFound, body: "Could not retry send nope"},
		{name: "discard the dead send", path: "/admin/outbox/" + s.deadID + "/discard", status: http.StatusSeeOther, location: "/admin/outbox?status=dead&done=discard&id=" + s.deadID, id: s.deadID, after: storage.SendSkipped},
		{name: "retry after discard is refused", path: "/admin/outbox/" + s.deadID + "/retry", status: http.StatusUnprocessableEntity, id: s.deadID, after: storage.SendSkipped},
		{name: "backtest", path: "/admin/rules/welcome/backtest", status: http.StatusOK, body: "rule welcome since 720h0m0s"},
	}
	for _, tc := range tests {
		code, loc, body := post(t, srv.URL, tc.path, url.Values{})
		require.Equal(t, tc.status, code, tc.name+": "+body)
		require.Equal(t, tc.location, loc, tc.name)
		require.Contains(t, body, tc.body, tc.name)
		if tc.id != "" {
			got, err := s.db.Send(ctx, tc.id)
			require.NoError(t, err)
			require.Equal(t, tc.after, got.Status, tc.name)
		}
	}
	require.Equal(t, []string{"welcome"}, s.backtests)
}

// TestEscaping stores hostile text where a customer or a shop controls it
// and checks it comes out inert.
func TestEscaping(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	ctx := context.Background()
	evil := `<script>alert(1)</script>`
	_, err := s.db.Append(ctx, storage.Ingest{Records: []behavior.Record{{
		ID: "evil", Kind: behavior.Searched, Source: "web", At: s.now.Add(-time.Minute), Email: s.customer, Query: evil,
		Items: []behavior.Item{{ProductID: "x", Title: evil, URL: "javascript:alert(1)"}},
	}}})
	require.NoError(t, err)
	srv, _ := s.server(t, func(o *Options) {
		o.RecommendFunc = func(context.Context, string, int) ([]storage.Product, error) {
			return []storage.Product{{ProductID: "x", Title: evil, URL: "javascript:alert(1)", ImageURL: `" onerror="alert(1)`}}, nil
		}
	})
	for _, path := range []string{"/admin/customers/" + url.PathEscape(s.customer), "/admin/customers?q=" + url.QueryEscape(evil)} {
		code, body := get(t, srv.URL, path)
		require.Contains(t, []int{http.StatusOK}, code)
		require.NotContains(t, body, evil, path)
		require.NotContains(t, body, `href="javascript:`, path)
		require.NotContains(t, body, `onerror="alert`, path)
	}
}

func TestStaticAssetsAndHeaders(t *testing.T) {
	t.Parallel()
	r, a, _ := newTestAdmin(t)
	hash := a.assets["admin.css"]
	require.NotEmpty(t, hash)
	w := do(r, http.MethodGet, "/admin/static/admin.css?v="+hash, nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Header().Get("Content-Type"), "text/css")
	require.Contains(t, w.Header().Get("Cache-Control"), "immutable")
	require.Contains(t, w.Header().Get("Content-Security-Policy"), "default-src 'none'")
	etag := w.Header().Get("ETag")
	w = do(r, http.MethodGet, "/admin/static/admin.css", nil, func(r *http.Request) { r.Header.Set("If-None-Match", etag) })
	require.Equal(t, http.StatusNotModified, w.Code)
	for _, p := range []string{"/admin/static/nope.css", "/admin/static/../admin.go", "/admin/static/"} {
		w = do(r, http.MethodGet, p, nil)
		require.Equal(t, http.StatusNotFound, w.Code, p)
	}
	w = do(r, http.MethodGet, "/admin/", nil, withBearer(testToken))
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "DENY", w.Header().Get("X-Frame-Options"))
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	require.Contains(t, w.Body.String(), "/admin/static/admin.css?v="+hash)
}
