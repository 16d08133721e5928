package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

// newTestAdmin mounts an Admin over an empty store on a bare gin engine
// that holds only the admin routes.
func newTestAdmin(t *testing.T, edit ...func(*Options)) (*gin.Engine, *Admin, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC))
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{Clock: clk, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	opts := Options{Store: db, Token: testToken, PublicURL: "http://127.0.0.1:8080", Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, e := range edit {
		e(&opts)
	}
	a, err := New(opts)
	require.NoError(t, err)
	gin.SetMode(gin.TestMode)
	r := gin.New()
	a.Register(r)
	return r, a, clk
}

type reqOpt func(*http.Request)

func withBearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func withCookies(cs ...*http.Cookie) reqOpt {
	return func(r *http.Request) {
		for _, c := range cs {
			r.AddCookie(c)
		}
	}
}

func do(r http.Handler, method, path string, form url.Values, opts ...reqOpt) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, o := range opts {
		o(req)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

// concretePath fills gin parameters with plausible values.
func concretePath(p string) string {
	p = regexp.MustCompile(`\*\w+`).ReplaceAllString(p, "/admin.css")
	return regexp.MustCompile(`:\w+`).ReplaceAllString(p, "x%40example.com")
}

// TestRoutesRequireAuth walks every route the admin registers: without a
// valid token or session, pages redirect to the login form and every
// other request is 401. Only the login form itself and the static assets
// (a stylesheet and an icon, which the login form needs) are public.
func TestRoutesRequireAuth(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestAdmin(t)
	public := map[string]bool{"GET /admin/login": true, "GET /admin/static/*filepath": true}
	routes := r.Routes()
	require.GreaterOrEqual(t, len(routes), 14)
	creds := map[string][]reqOpt{
		"none":                nil,
		"wrong bearer":        {withBearer("nope")},
		"forged cookie":       {withCookies(&http.Cookie{Name: sessionCookie, Value: "v1.9999999999.abc.def"})},
		"raw token as cookie": {withCookies(&http.Cookie{Name: sessionCookie, Value: testToken})},
	}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Path
		for name, opts := range creds {
			t.Run(key+" "+name, func(t *testing.T) {
				w := do(r, rt.Method, concretePath(rt.Path), url.Values{}, opts...)
				if public[key] {
					require.Equal(t, http.StatusOK, w.Code)
					return
				}
				switch rt.Method {
				case http.MethodGet, http.MethodHead:
					require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
					require.True(t, strings.HasPrefix(w.Header().Get("Location"), "/admin/login"), w.Header().Get("Location"))
				default:
					require.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
				}
			})
		}
	}
	// And with the token every protected route is reachable.
	for _, rt := range routes {
		if public[rt.Method+" "+rt.Path] || rt.Path == "/admin/login" {
			continue // the login form takes the token in its body
		}
		w := do(r, rt.Method, concretePath(rt.Path), url.Values{}, withBearer(testToken))
		require.NotEqual(t, http.StatusUnauthorized, w.Code, rt.Path)
		if rt.Path != "/admin/logout" {
			require.False(t, strings.HasPrefix(w.Header().Get("Location"), "/admin/login"), rt.Path)
		}
	}
}

// login goes through the form and returns the session cookie.
func login(t *testing.T, r http.Handler) *http.Cookie {
	t.Helper()
	w := do(r, http.MethodGet, "/admin/login?next=%2Fadmin%2Foutbox", nil)
	require.Equal(t, http.StatusOK, w.Code)
	lc := cookie(w, loginCookie)
	require.NotNil(t, lc)
	require.Contains(t, w.Body.String(), `value="`+lc.Value+`"`)
	w = do(r, http.MethodPost, "/admin/login", url.Values{"token": {testToken}, "csrf": {lc.Value}, "next": {"/admin/outbox"}}, withCookies(lc))
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	require.Equal(t, "/admin/outbox", w.Header().Get("Location"))
	sc := cookie(w, sessionCookie)
	require.NotNil(t, sc)
	return sc
}

func cookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name && c.MaxAge >= 0 {
			return c
		}
	}
	return nil
}

func TestLoginForm(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestAdmin(t)
	w := do(r, http.MethodGet, "/admin/login", nil)
	lc := cookie(w, loginCookie)
	tests := []struct {
		name   string
		form   url.Values
		cookie bool
		status int
	}{
		{"wrong token", url.Values{"token": {"guess"}, "csrf": {lc.Value}}, true, http.StatusUnauthorized},
		{"empty token", url.Values{"csrf": {lc.Value}}, true, http.StatusUnauthorized},
		{"token with a suffix", url.Values{"token": {testToken + "x"}, "csrf": {lc.Value}}, true, http.StatusUnauthorized},
		{"no csrf cookie", url.Values{"token": {testToken}, "csrf": {lc.Value}}, false, http.StatusForbidden},
		{"csrf field mismatch", url.Values{"token": {testToken}, "csrf": {"other"}}, true, http.StatusForbidden},
		{"good", url.Values{"token": {testToken}, "csrf": {lc.Value}}, true, http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []reqOpt
			if tc.cookie {
				opts = append(opts, withCookies(lc))
			}
			w := do(r, http.MethodPost, "/admin/login", tc.form, opts...)
			require.Equal(t, tc.status, w.Code)
			sc := cookie(w, sessionCookie)
			if tc.status != http.StatusSeeOther {
				require.Nil(t, sc)
				return
			}
			require.NotNil(t, sc)
			require.True(t, sc.HttpOnly)
			require.Equal(t, http.SameSiteStrictMode, sc.SameSite)
			require.Equal(t, "/admin", sc.Path)
			require.False(t, sc.Secure, "plain http on loopback cannot carry a Secure cookie")
			require.NotContains(t, sc.Value, testToken)
			require.Equal(t, "/admin/", w.Header().Get("Location"))
		})
	}
}

func TestCookieSecureFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		public string
		force  bool
		secure bool
	}{
		{"http://127.0.0.1:8080", false, false},
		{"http://localhost:8080", false, false},
		{"http://127.0.0.1:8080", true, true},
		{"https://mail.shop.example", false, true},
		{"http://mail.shop.example", false, true},
		{"", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.public, func(t *testing.T) {
			r, _, _ := newTestAdmin(t, func(o *Options) { o.PublicURL, o.Secure = tc.public, tc.force })
			w := do(r, http.MethodGet, "/admin/login", nil)
			require.Equal(t, tc.secure, cookie(w, loginCookie).Secure)
			lc := cookie(w, loginCookie)
			w = do(r, http.MethodPost, "/admin/login", url.Values{"token": {testToken}, "csrf": {lc.Value}}, withCookies(lc))
			require.Equal(t, tc.secure, cookie(w, sessionCookie).Secure)
		})
	}
}

func TestSessionCSRFExpiryAndLogout(t *testing.T) {
	t.Parallel()
	r, a, clk := newTestAdmin(t, func(o *Options) {
		o.DiscardSendFunc = func(_ context.Context, id string) error { return nil }
	})
	sc := login(t, r)
	w := do(r, http.MethodGet, "/admin/outbox", nil, withCookies(sc))
	require.Equal(t, http.StatusOK, w.Code)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(w.Body.String())
	require.NotNil(t, m, "pages carry the CSRF token in their forms")
	csrf := m[1]

	tests := []struct {
		name   string
		form   url.Values
		opts   []reqOpt
		status int
	}{
		{"cookie without csrf", url.Values{}, []reqOpt{withCookies(sc)}, http.StatusForbidden},
		{"cookie with a wrong csrf", url.Values{"csrf": {"x" + csrf}}, []reqOpt{withCookies(sc)}, http.StatusForbidden},
		{"cookie with csrf", url.Values{"csrf": {csrf}}, []reqOpt{withCookies(sc)}, http.StatusSeeOther},
		{"bearer needs no csrf", url.Values{}, []reqOpt{withBearer(testToken)}, http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(r, http.MethodPost, "/admin/outbox/s1/discard", tc.form, tc.opts...)
			require.Equal(t, tc.status, w.Code, w.Body.String())
		})
	}

	t.Run("tampered expiry", func(t *testing.T) {
		parts := strings.Split(sc.Value, ".")
		parts[1] = "9999999999"
		w := do(r, http.MethodGet, "/admin/", nil, withCookies(&http.Cookie{Name: sessionCookie, Value: strings.Join(parts, ".")}))
		require.Equal(t, http.StatusSeeOther, w.Code)
	})

	t.Run("another token's session", func(t *testing.T) {
		other := newAuthenticator("other-token", clk)
		v, _ := other.issue()
		w := do(r, http.MethodGet, "/admin/", nil, withCookies(&http.Cookie{Name: sessionCookie, Value: v}))
		require.Equal(t, http.StatusSeeOther, w.Code)
	})

	t.Run("logout ends the session", func(t *testing.T) {
		sc2 := login(t, r)
		w := do(r, http.MethodGet, "/admin/health", nil, withCookies(sc2))
		require.Equal(t, http.StatusOK, w.Code)
		csrf2 := a.auth.mac("csrf", strings.Split(sc2.Value, ".")[2])
		w = do(r, http.MethodPost, "/admin/logout", url.Values{"csrf": {csrf2}}, withCookies(sc2))
		require.Equal(t, http.StatusSeeOther, w.Code)
		w = do(r, http.MethodGet, "/admin/health", nil, withCookies(sc2))
		require.Equal(t, http.StatusSeeOther, w.Code, "a logged-out cookie replayed must not work")
		// The first session is unaffected.
		w = do(r, http.MethodGet, "/admin/health", nil, withCookies(sc))
		require.Equal(t, http.StatusOK, w.Code)
	})

	t.Run("expiry", func(t *testing.T) {
		clk.Advance(SessionTTL + time.Second)
		w := do(r, http.MethodGet, "/admin/health", nil, withCookies(sc))
		require.Equal(t, http.StatusSeeOther, w.Code)
	})
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	r, _, clk := newTestAdmin(t)
	lc := cookie(do(r, http.MethodGet, "/admin/login", nil), loginCookie)
	for i := 0; i < loginFailuresPerMinute; i++ {
		w := do(r, http.MethodPost, "/admin/login", url.Values{"token": {"guess"}, "csrf": {lc.Value}}, withCookies(lc))
		require.Equal(t, http.StatusUnauthorized, w.Code)
	}
	w := do(r, http.MethodPost, "/admin/login", url.Values{"token": {testToken}, "csrf": {lc.Value}}, withCookies(lc))
	require.Equal(t, http.StatusTooManyRequests, w.Code, "even the right token waits once the limit is hit")
	clk.Advance(time.Minute)
	w = do(r, http.MethodPost, "/admin/login", url.Values{"token": {testToken}, "csrf": {lc.Value}}, withCookies(lc))
	require.Equal(t, http.StatusSeeOther, w.Code)
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/admin/outbox?status=dead", "/admin/outbox?status=dead"},
		{"/admin/customers/a%40b.com", "/admin/customers/a%40b.com"},
		{"", "/admin/"},
		{"https://evil.example/", "/admin/"},
		{"//evil.example/admin/", "/admin/"},
		{"/admin//evil.example", "/admin/"},
		{"/admin/\\evil", "/admin/"},
		{"/admin/login", "/admin/"},
		{"/api/v1/backup", "/admin/"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, safeNext(tc.in), tc.in)
	}
}
