package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
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
	r, _, clk := newTestAdmin(t)
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
				switch {
				case key == "POST /admin/login":
					// The login form is refused before its token is looked
					// at when the double-submit CSRF token is missing.
					require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
					require.Nil(t, cookie(w, sessionCookie))
				case rt.Method == http.MethodGet, rt.Method == http.MethodHead:
					require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
					require.True(t, strings.HasPrefix(w.Header().Get("Location"), "/admin/login"), w.Header().Get("Location"))
				default:
					require.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
				}
			})
		}
	}
	// The wrong bearers above count against this client's guesses; start
	// a fresh minute so the number of routes never decides what follows.
	clk.Advance(time.Minute)
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
		{"wrong token without csrf", url.Values{"token": {"guess"}}, false, http.StatusForbidden},
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

func withIP(ip string) reqOpt {
	return func(r *http.Request) { r.RemoteAddr = net.JoinHostPort(ip, "40000") }
}

// loginFrom goes through the login form from ip with the given token.
func loginFrom(r http.Handler, ip, token string) *httptest.ResponseRecorder {
	lc := cookie(do(r, http.MethodGet, "/admin/login", nil, withIP(ip)), loginCookie)
	return do(r, http.MethodPost, "/admin/login", url.Values{"token": {token}, "csrf": {lc.Value}}, withCookies(lc), withIP(ip))
}

// TestLoginLockoutIsPerClient reproduces audit finding 1: 25 tokenless
// posts locked everyone out, the admin included. Posts without the form's
// CSRF token must not count at all, and real wrong guesses count only
// against the client that made them.
func TestLoginLockoutIsPerClient(t *testing.T) {
	t.Parallel()
	const attacker, admin = "203.0.113.7", "198.51.100.2"
	limited := func(before, after int) func(int) int {
		return func(i int) int {
			if i < loginFailuresPerMinute {
				return before
			}
			return after
		}
	}
	tests := []struct {
		name    string
		attempt func(r http.Handler, i int) *httptest.ResponseRecorder
		want    func(i int) int
		// then the right token through the form from these addresses
		attackerAfter string
		wantAfter     int
		others        []string // must still log in
	}{
		{
			name: "tokenless posts without a csrf cookie are no guesses",
			attempt: func(r http.Handler, _ int) *httptest.ResponseRecorder {
				return do(r, http.MethodPost, "/admin/login", url.Values{"token": {"wrong"}}, withIP(attacker))
			},
			want:          func(int) int { return http.StatusForbidden },
			attackerAfter: attacker, wantAfter: http.StatusSeeOther,
		},
		{
			name: "cross-site posts with a wrong csrf field are no guesses",
			attempt: func(r http.Handler, _ int) *httptest.ResponseRecorder {
				return do(r, http.MethodPost, "/admin/login", url.Values{"token": {"wrong"}, "csrf": {"forged"}},
					withCookies(&http.Cookie{Name: loginCookie, Value: "victims"}), withIP(attacker))
			},
			want:          func(int) int { return http.StatusForbidden },
			attackerAfter: attacker, wantAfter: http.StatusSeeOther,
		},
		{
			name: "wrong guesses lock out only their own client",
			attempt: func(r http.Handler, _ int) *httptest.ResponseRecorder {
				return loginFrom(r, attacker, "guess")
			},
			want:          limited(http.StatusUnauthorized, http.StatusTooManyRequests),
			attackerAfter: attacker, wantAfter: http.StatusTooManyRequests,
		},
		{
			name: "an IPv6 /64 is one client",
			attempt: func(r http.Handler, i int) *httptest.ResponseRecorder {
				return loginFrom(r, fmt.Sprintf("2001:db8:1:2::%x", i+1), "guess")
			},
			want:          limited(http.StatusUnauthorized, http.StatusTooManyRequests),
			attackerAfter: "2001:db8:1:2:ffff::1", wantAfter: http.StatusTooManyRequests,
			others: []string{"2001:db8:1:3::1"},
		},
		{
			name: "wrong bearer tokens are guesses too",
			attempt: func(r http.Handler, _ int) *httptest.ResponseRecorder {
				return do(r, http.MethodGet, "/admin/health", nil, withBearer("guess"), withIP(attacker))
			},
			want:          limited(http.StatusSeeOther, http.StatusTooManyRequests),
			attackerAfter: attacker, wantAfter: http.StatusTooManyRequests,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _, clk := newTestAdmin(t)
			for i := range 25 {
				w := tc.attempt(r, i)
				require.Equal(t, tc.want(i), w.Code, "attempt %d", i+1)
				if w.Code == http.StatusTooManyRequests {
					require.NotEmpty(t, w.Header().Get("Retry-After"))
				}
			}
			require.Equal(t, tc.wantAfter, loginFrom(r, tc.attackerAfter, testToken).Code, "the right token from the attacking client")
			for _, ip := range append([]string{admin}, tc.others...) {
				require.Equal(t, http.StatusSeeOther, loginFrom(r, ip, testToken).Code, "the admin from %s", ip)
				require.Equal(t, http.StatusOK, do(r, http.MethodGet, "/admin/health", nil, withBearer(testToken), withIP(ip)).Code, "bearer from %s", ip)
			}
			clk.Advance(time.Minute)
			require.Equal(t, http.StatusSeeOther, loginFrom(r, tc.attackerAfter, testToken).Code, "a minute later")
		})
	}
}

// TestLoginFailuresBounded: an attacker with many addresses cannot grow
// the failure counts without bound, and a new minute forgets them.
func TestLoginFailuresBounded(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC))
	a := newAuthenticator(testToken, clk)
	for i := range maxLoginClients + 500 {
		a.failed(fmt.Sprint("client", i))
		require.LessOrEqual(t, len(a.failures), maxLoginClients)
	}
	for range loginFailuresPerMinute {
		a.failed("last")
	}
	ok, retry := a.allowAttempt("last")
	require.False(t, ok, "the newest client's count is kept")
	require.Equal(t, 60, retry)
	clk.Advance(time.Minute)
	ok, _ = a.allowAttempt("last")
	require.True(t, ok)
	require.Empty(t, a.failures)
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8::1", "2001:db8::/64"},
		{"2001:db8::ffff:1", "2001:db8::/64"},
		{"2001:db8:0:1::1", "2001:db8:0:1::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"", ""},
		{"not an address", "not an address"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, clientKey(tc.in), tc.in)
	}
}

// adminOver mounts an Admin over store on a bare gin engine.
func adminOver(t *testing.T, store storage.Store, clk clock.Clock) (*gin.Engine, *Admin) {
	t.Helper()
	a, err := New(Options{Store: store, Token: testToken, PublicURL: "http://127.0.0.1:8080", Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	gin.SetMode(gin.TestMode)
	r := gin.New()
	a.Register(r)
	return r, a
}

func logout(t *testing.T, r http.Handler, a *Admin, sc *http.Cookie) {
	t.Helper()
	csrf := a.auth.mac("csrf", strings.Split(sc.Value, ".")[2])
	w := do(r, http.MethodPost, "/admin/logout", url.Values{"csrf": {csrf}}, withCookies(sc))
	require.Equal(t, http.StatusSeeOther, w.Code)
}

// TestLogoutSurvivesRestart reproduces audit finding 2: a logout kept only
// in memory let the logged-out cookie work again after a restart.
func TestLogoutSurvivesRestart(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC))
	path := filepath.Join(t.TempDir(), storage.FileName)
	db, err := storage.Open(path, storage.Options{Clock: clk, NoSync: true})
	require.NoError(t, err)
	r, a := adminOver(t, db, clk)
	out, stay := login(t, r), login(t, r)
	logout(t, r, a, out)
	require.NoError(t, db.Close())

	db, err = storage.Open(path, storage.Options{Clock: clk, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	r, _ = adminOver(t, db, clk)
	tests := []struct {
		name   string
		cookie *http.Cookie
		status int
	}{
		{"logged out before the restart", out, http.StatusSeeOther},
		{"still logged in", stay, http.StatusOK},
		{"logged out, asked again (cached)", out, http.StatusSeeOther},
	}
	for _, tc := range tests {
		w := do(r, http.MethodGet, "/admin/health", nil, withCookies(tc.cookie))
		require.Equal(t, tc.status, w.Code, tc.name)
	}
}

// sessionsSpy is a store whose SessionRevoked calls are counted and can
// fail; embedding *storage.DB keeps it a storage.Store.
type sessionsSpy struct {
	*storage.DB
	asked atomic.Int32
	err   error
}

func (s *sessionsSpy) SessionRevoked(ctx context.Context, id string) (bool, error) {
	s.asked.Add(1)
	if s.err != nil {
		return false, s.err
	}
	return s.DB.SessionRevoked(ctx, id)
}

// TestSessionChecksAreCached: the store is asked once per session, not on
// every request, and a store that cannot answer is a 500, not a login.
func TestSessionChecksAreCached(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC))
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{Clock: clk, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	spy := &sessionsSpy{DB: db}
	r, a := adminOver(t, spy, clk)
	sc := login(t, r)
	for range 5 {
		require.Equal(t, http.StatusOK, do(r, http.MethodGet, "/admin/health", nil, withCookies(sc)).Code)
	}
	require.EqualValues(t, 1, spy.asked.Load())
	logout(t, r, a, sc)
	revoked, err := db.SessionRevoked(context.Background(), strings.Split(sc.Value, ".")[2])
	require.NoError(t, err)
	require.True(t, revoked, "the logout reached the store")
	require.Equal(t, http.StatusSeeOther, do(r, http.MethodGet, "/admin/health", nil, withCookies(sc)).Code)
	require.EqualValues(t, 1, spy.asked.Load())

	spy.err = errors.New("disk on fire")
	w := do(r, http.MethodGet, "/admin/health", nil, withCookies(login(t, r)))
	require.Equal(t, http.StatusInternalServerError, w.Code)
}

// TestBearerSchemeAnyCase reproduces audit finding 3: RFC 7235 auth
// schemes are case-insensitive, and "bearer <token>" got 401.
func TestBearerSchemeAnyCase(t *testing.T) {
	t.Parallel()
	r, _, _ := newTestAdmin(t)
	tests := []struct {
		header string
		status int
	}{
		{"Bearer " + testToken, http.StatusOK},
		{"bearer " + testToken, http.StatusOK},
		{"BEARER " + testToken, http.StatusOK},
		{"bEaReR " + testToken, http.StatusOK},
		{"Bearer   " + testToken, http.StatusOK},
		{"bearer wrong", http.StatusSeeOther},
		{"Bearer", http.StatusSeeOther},
		{"Bearer" + testToken, http.StatusSeeOther},
		{"Basic " + testToken, http.StatusSeeOther},
		{testToken, http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.header, func(t *testing.T) {
			w := do(r, http.MethodGet, "/admin/health", nil, func(r *http.Request) { r.Header.Set("Authorization", tc.header) })
			require.Equal(t, tc.status, w.Code)
		})
	}
	// A POST with a lowercase scheme is a bearer request: no CSRF needed.
	w := do(r, http.MethodPost, "/admin/logout", url.Values{}, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+testToken) })
	require.Equal(t, http.StatusSeeOther, w.Code)
}
