package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/config"
)

// Every admin page and API route of the fully wired server answers 401 or
// redirects to the login page without the token; only the login form and
// its stylesheet are public.
func TestEveryAdminAndAPIRouteNeedsTheToken(t *testing.T) {
	cfg := app.ExampleConfig(t)
	a := openApp(t, cfg)
	h := a.Server.Handler()
	public := map[string]bool{"GET /admin/login": true, "POST /admin/login": true, "GET /admin/static/*filepath": true, "HEAD /admin/static/*filepath": true}
	n := 0
	for _, r := range a.Server.Routes() {
		if !strings.HasPrefix(r.Path, "/api/") && !strings.HasPrefix(r.Path, "/admin") {
			continue
		}
		if public[r.Method+" "+r.Path] {
			continue
		}
		n++
		path := strings.NewReplacer(":email", "a@example.com", ":id", "x", "*filepath", "x").Replace(r.Path)
		for _, auth := range []string{"", "Bearer wrong", cfg.Admin.Token} {
			req := httptest.NewRequest(r.Method, path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			redirect := rec.Code == http.StatusSeeOther && strings.HasPrefix(rec.Header().Get("Location"), "/admin/login")
			if rec.Code != http.StatusUnauthorized && !redirect {
				t.Errorf("%s %s with %q: %d, want 401 or a redirect to login", r.Method, path, auth, rec.Code)
			}
		}
	}
	if n < 25 {
		t.Fatalf("walked only %d protected routes", n)
	}
}

// A config without tracking.write_key (which `nudge check` accepts) starts,
// with the tracking routes answering that tracking is off: the audit saw
// check say "ok" for a config serve then refused.
func TestServesWithTrackingOff(t *testing.T) {
	cfg := app.ExampleConfig(t)
	cfg.Tracking.WriteKey = ""
	a := openApp(t, cfg)
	h := a.Server.Handler()
	for _, target := range []string{"POST /v1/track", "POST /v1/batch", "GET /t.js"} {
		method, path, _ := strings.Cut(target, " ")
		req := httptest.NewRequest(method, path, strings.NewReader(`{"event":"x","anonymousId":"a"}`))
		req.SetBasicAuth("", "")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "tracking is off") {
			t.Errorf("%s: %d %s, want 404 saying tracking is off", target, rec.Code, rec.Body)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("healthz: %d", rec.Code)
	}
}

// GET /api/v1/insights gives the live fit, or with ?as_of= one made on
// request, as `nudge insights --as-of` makes it; a bad as_of is a 400.
func TestInsightsAPIAsOf(t *testing.T) {
	cfg := app.ExampleConfig(t)
	a := openApp(t, cfg)
	h := a.Server.Handler()
	get := func(q string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/insights"+q, nil)
		req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := get("?as_of=1998-07-01"); code != http.StatusOK || !strings.Contains(body, `"as_of":"1998-07-01T00:00:00Z"`) {
		t.Errorf("as_of a date: %d %.200s", code, body)
	}
	if code, body := get("?as_of=2026-01-02T03:04:05%2B01:00"); code != http.StatusOK || !strings.Contains(body, `"as_of":"2026-01-02T02:04:05Z"`) {
		t.Errorf("as_of RFC 3339: %d %.200s", code, body)
	}
	if code, body := get("?as_of=yesterday"); code != http.StatusBadRequest || !strings.Contains(body, "as_of") {
		t.Errorf("bad as_of: %d %s", code, body)
	}
	if code, _ := get(""); code != http.StatusOK {
		t.Errorf("live fit: %d", code)
	}
	// The on-request fit replaced nothing.
	if got := a.Insights().Report().AsOf; got.Year() == 1998 {
		t.Errorf("the live report became the 1998 fit")
	}
}

// openApp opens the fully wired app on cfg, closed when the test ends.
func openApp(t *testing.T, cfg *config.Config) *app.App {
	t.Helper()
	a, err := app.Open(context.Background(), cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}
