package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

// Cookie names. The session cookie is scoped to /admin so it never rides
// along on webhook or tracking requests.
const (
	sessionCookie = "nudge_admin"
	loginCookie   = "nudge_login_csrf"
	csrfField     = "csrf"
	// SessionTTL is how long a login lasts.
	SessionTTL = 12 * time.Hour
	// loginFailuresPerMinute caps wrong-token attempts per client (see
	// clientKey), so guessing the token online is slow. It is per client
	// and not global because a global cap let anyone lock the admin out
	// with a few wrong posts (audit finding 1).
	loginFailuresPerMinute = 20
	// maxLoginClients bounds the per-client failure counts. Past it an
	// arbitrary count is dropped: memory stays bounded however many
	// addresses an attacker has, and dropping only ever gives one client
	// more guesses, never locks anyone out.
	maxLoginClients = 10000
	// maxSessionCache bounds each in-memory session list (logged out;
	// checked and live). Only sessions whose MAC verified get there, so
	// only the token holder can fill them. With a SessionStore an evicted
	// entry is asked of the store again; without one an evicted logout is
	// forgotten, which only matters for sessions that expire soon anyway.
	maxSessionCache = 10000
)

// SessionStore keeps logged-out admin sessions, so a logout survives a
// restart of the server: the session cookie is stateless, and a logout
// kept only in memory let the cookie work again after a restart for the
// rest of its lifetime (audit finding 2). The admin page uses
// Options.Store for it when the store implements it, as *storage.DB does.
type SessionStore interface {
	// RevokeSession records that session id must be refused until then.
	RevokeSession(ctx context.Context, id string, until time.Time) error
	// SessionRevoked reports whether id was revoked and still is.
	SessionRevoked(ctx context.Context, id string) (bool, error)
}

// The bbolt store must keep implementing SessionStore: the admin page
// finds it by a type assertion, so a drifted signature would silently put
// logouts back in memory only.
var _ SessionStore = (*storage.DB)(nil)

// sessionStore is where logouts are kept beyond this process, nil when
// the store cannot keep them (then they live in memory only).
func (a *Admin) sessionStore() SessionStore {
	s, _ := a.opts.Store.(SessionStore)
	return s
}

// authenticator issues and checks sessions. A session is
// "v1.<expiry unix>.<nonce>.<mac>" where mac is HMAC-SHA256 over the rest
// with a key derived from the admin token: the cookie never holds the token,
// and changing the token ends every session.
type authenticator struct {
	token []byte
	key   []byte
	clock clock.Clock

	mu sync.Mutex
	// revoked holds logged-out nonces → session expiry: a cache of the
	// SessionStore, or the only record when there is none. live holds
	// nonces the store said are not revoked, so a request does not read
	// the store each time; only this process revokes (bbolt allows one
	// writer process), so such an answer stays true until revoke here.
	revoked map[string]time.Time
	live    map[string]time.Time
	// failures counts wrong tokens per client key in the unix minute
	// failWin; a new minute starts every count afresh.
	failWin  int64
	failures map[string]int
}

func newAuthenticator(token string, clk clock.Clock) *authenticator {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("nudge admin session v1"))
	return &authenticator{
		token: []byte(token), key: m.Sum(nil), clock: clk,
		revoked: map[string]time.Time{}, live: map[string]time.Time{}, failures: map[string]int{},
	}
}

func (a *authenticator) mac(parts ...string) string {
	m := hmac.New(sha256.New, a.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenOK compares in constant time; the length leak of
// ConstantTimeCompare is avoided by comparing digests.
func (a *authenticator) tokenOK(got string) bool {
	if got == "" {
		return false
	}
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256(a.token)
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func randomString() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *authenticator) issue() (value string, expires time.Time) {
	expires = a.clock.Now().Add(SessionTTL).Truncate(time.Second)
	exp := strconv.FormatInt(expires.Unix(), 10)
	nonce := randomString()
	return "v1." + exp + "." + nonce + "." + a.mac("session", exp, nonce), expires
}

// session is a verified session cookie.
type session struct {
	nonce   string
	expires time.Time
}

// parse returns the session when the cookie value is authentic and
// unexpired; whether it was logged out is verify's question.
func (a *authenticator) parse(value string) (session, bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 4 || parts[0] != "v1" {
		return session{}, false
	}
	want := a.mac("session", parts[1], parts[2])
	if !hmac.Equal([]byte(want), []byte(parts[3])) {
		return session{}, false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !a.clock.Now().Before(time.Unix(exp, 0)) {
		return session{}, false
	}
	return session{nonce: parts[2], expires: time.Unix(exp, 0)}, true
}

// verify returns the session when the cookie value is authentic,
// unexpired and not logged out. store may be nil (logouts in memory
// only); an error means the store could not say.
func (a *authenticator) verify(ctx context.Context, store SessionStore, value string) (session, bool, error) {
	s, ok := a.parse(value)
	if !ok {
		return session{}, false, nil
	}
	a.mu.Lock()
	_, gone := a.revoked[s.nonce]
	_, live := a.live[s.nonce]
	a.mu.Unlock()
	switch {
	case gone:
		return session{}, false, nil
	case live || store == nil:
		return s, true, nil
	}
	revoked, err := store.SessionRevoked(ctx, s.nonce)
	if err != nil {
		return session{}, false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if revoked {
		a.remember(a.revoked, s)
		return session{}, false, nil
	}
	if _, gone := a.revoked[s.nonce]; gone {
		return session{}, false, nil // logged out while the store was asked
	}
	a.remember(a.live, s)
	return s, true, nil
}

// remember puts s in m (a.mu held), first dropping expired entries and
// then, if still full, arbitrary ones, so m stays bounded.
func (a *authenticator) remember(m map[string]time.Time, s session) {
	if len(m) >= maxSessionCache {
		now := a.clock.Now()
		for n, exp := range m {
			if !now.Before(exp) {
				delete(m, n)
			}
		}
		for n := range m {
			if len(m) < maxSessionCache {
				break
			}
			delete(m, n)
		}
	}
	m[s.nonce] = s.expires
}

// revoke logs s out: at once in this process, and in store (if any) so
// a restart does not bring it back. The memory entry is made first so a
// concurrent verify that read the store before the write still refuses.
func (a *authenticator) revoke(ctx context.Context, store SessionStore, s session) error {
	a.mu.Lock()
	delete(a.live, s.nonce)
	a.remember(a.revoked, s)
	a.mu.Unlock()
	if store == nil {
		return nil
	}
	return store.RevokeSession(ctx, s.nonce, s.expires)
}

// clientKey is what login failures are counted by: the client's address
// (gin's ClientIP, which trusts forwarding headers only from configured
// proxies), with IPv6 cut to its /64, since one host usually holds a
// whole /64 and could otherwise change address on every guess.
func clientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.WithZone("").Prefix(64) // never fails for 64 on IPv6
		return p.String()
	}
	return addr.String()
}

// rollWindow starts a new minute's counts (a.mu held). All counts share
// one window, so clearing the map is all the expiry there is.
func (a *authenticator) rollWindow() {
	if minute := a.clock.Now().Unix() / 60; a.failWin != minute {
		a.failWin = minute
		clear(a.failures)
	}
}

// allowAttempt reports whether client may have another token checked
// now, and if not, how many seconds until it may.
func (a *authenticator) allowAttempt(client string) (bool, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollWindow()
	if a.failures[client] < loginFailuresPerMinute {
		return true, 0
	}
	return false, int(60 - a.clock.Now().Unix()%60)
}

// failed counts a wrong token from client.
func (a *authenticator) failed(client string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollWindow()
	if _, ok := a.failures[client]; !ok && len(a.failures) >= maxLoginClients {
		for k := range a.failures {
			delete(a.failures, k)
			break
		}
	}
	a.failures[client]++
}

// tooManyAttempts answers a client over its failure limit.
func (a *Admin) tooManyAttempts(c *gin.Context, retry int) {
	c.Header("Retry-After", strconv.Itoa(retry))
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusTooManyRequests, "text/plain; charset=utf-8", []byte("too many wrong admin tokens from this address; wait a minute\n"))
	c.Abort()
}

// Gin context keys set by requireAuth.
const (
	ctxNonce   = "admin.nonce"   // the session nonce (cookie logins)
	ctxExpires = "admin.expires" // the session's expiry (cookie logins)
	ctxBearer  = "admin.bearer"  // true for Authorization: Bearer requests
)

// bearerToken returns the credentials of an "Authorization: Bearer"
// header. The scheme is matched in any case, as RFC 7235 §2.1 says auth
// schemes are case-insensitive; "bearer <token>" used to get 401 (audit
// finding 3).
func bearerToken(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(cred, " "), true
}

// csrfFor is the CSRF token for the request's session: an HMAC of the
// session nonce, so it needs no server-side storage and dies with the
// session. Bearer requests carry no ambient credential and need none.
func (a *authenticator) csrfFor(c *gin.Context) string {
	if n := c.GetString(ctxNonce); n != "" {
		return a.mac("csrf", n)
	}
	return ""
}

// requireAuth lets through a valid Bearer token or session cookie.
// Without one, page loads go to the login form and everything else gets
// 401. Cookie-authenticated POSTs must carry the session's CSRF token.
// A wrong Bearer token is a guess like a wrong login and counts against
// the same per-client limit; otherwise the header would be a way round it.
func (a *Admin) requireAuth(c *gin.Context) {
	if tok, ok := bearerToken(c.GetHeader("Authorization")); ok {
		client := clientKey(c.ClientIP())
		if allowed, retry := a.auth.allowAttempt(client); !allowed {
			a.tooManyAttempts(c, retry)
			return
		}
		if a.auth.tokenOK(tok) {
			c.Set(ctxBearer, true)
			c.Next()
			return
		}
		a.auth.failed(client)
		a.unauthorized(c)
		return
	}
	if v, err := c.Cookie(sessionCookie); err == nil {
		s, ok, err := a.auth.verify(c.Request.Context(), a.sessionStore(), v)
		if err != nil {
			a.fail(c, err)
			return
		}
		if ok {
			c.Set(ctxNonce, s.nonce)
			c.Set(ctxExpires, s.expires)
			if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
				if !hmac.Equal([]byte(c.PostForm(csrfField)), []byte(a.auth.mac("csrf", s.nonce))) {
					c.Header("Cache-Control", "no-store")
					c.Data(http.StatusForbidden, "text/plain; charset=utf-8", []byte("CSRF token missing or wrong; reload the page and try again\n"))
					c.Abort()
					return
				}
			}
			c.Next()
			return
		}
	}
	a.unauthorized(c)
}

func (a *Admin) unauthorized(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
		c.Redirect(http.StatusSeeOther, "/admin/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
		c.Abort()
		return
	}
	c.Header("WWW-Authenticate", `Bearer realm="nudge admin"`)
	c.Data(http.StatusUnauthorized, "text/plain; charset=utf-8", []byte("admin token required\n"))
	c.Abort()
}

// safeNext keeps the post-login redirect inside the admin page, so the
// login form cannot be used as an open redirect.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "/admin/login") ||
		strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "//") {
		return "/admin/"
	}
	return next
}

type loginView struct {
	Next      string
	LoginCSRF string
}

func (a *Admin) loginPage(c *gin.Context) {
	a.showLogin(c, http.StatusOK, "")
}

// showLogin renders the form with a fresh double-submit token: the same
// random value in a cookie and in a hidden field. A cross-site form post
// cannot read the cookie, so it cannot fill the field.
func (a *Admin) showLogin(c *gin.Context, status int, msg string) {
	tok := randomString()
	http.SetCookie(c.Writer, &http.Cookie{
		Name: loginCookie, Value: tok, Path: "/admin/login", MaxAge: 3600,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode,
	})
	next := c.Query("next")
	if next == "" {
		next = c.PostForm("next")
	}
	a.render(c, status, "login", view{Title: "Log in", Error: msg, Data: loginView{Next: safeNext(next), LoginCSRF: tok}})
}

// loginPost checks the form's double-submit token before the admin
// token: a post without it (cross-site, or a bare curl) is refused without
// its token being checked or counted, so it can neither guess nor use up
// anyone's attempts. Wrong tokens are then limited per client, so one
// client's failures never lock out another (audit finding 1).
func (a *Admin) loginPost(c *gin.Context) {
	ck, err := c.Cookie(loginCookie)
	if err != nil || ck == "" || !hmac.Equal([]byte(ck), []byte(c.PostForm(csrfField))) {
		a.showLogin(c, http.StatusForbidden, "The form expired; please log in again.")
		return
	}
	client := clientKey(c.ClientIP())
	if allowed, retry := a.auth.allowAttempt(client); !allowed {
		c.Header("Retry-After", strconv.Itoa(retry))
		a.showLogin(c, http.StatusTooManyRequests, "Too many failed attempts; wait a minute.")
		return
	}
	if !a.auth.tokenOK(c.PostForm("token")) {
		a.auth.failed(client)
		a.showLogin(c, http.StatusUnauthorized, "That is not the admin token.")
		return
	}
	value, expires := a.auth.issue()
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/admin", Expires: expires,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode,
	})
	http.SetCookie(c.Writer, &http.Cookie{Name: loginCookie, Path: "/admin/login", MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
	c.Redirect(http.StatusSeeOther, safeNext(c.PostForm("next")))
}

// logout revokes the session, in the store too so that it stays logged
// out across a restart. If the store write fails the session is still
// refused by this process and the browser drops the cookie; the error is
// logged because a restart would accept a copy of the cookie again.
func (a *Admin) logout(c *gin.Context) {
	if n := c.GetString(ctxNonce); n != "" {
		s := session{nonce: n, expires: c.GetTime(ctxExpires)}
		// A client hanging up must not cancel the write: the browser may
		// have dropped the cookie already while a copy of it lives on.
		ctx := context.WithoutCancel(c.Request.Context())
		if err := a.auth.revoke(ctx, a.sessionStore(), s); err != nil {
			a.opts.Logger.Error("admin logout not stored; a restart would accept the session again until it expires", "error", err)
		}
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Path: "/admin", MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
	c.Redirect(http.StatusSeeOther, "/admin/login")
}
