package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/clock"
)

// Cookie names. The session cookie is scoped to /admin so it never rides
// along on webhook or tracking requests.
const (
	sessionCookie = "nudge_admin"
	loginCookie   = "nudge_login_csrf"
	csrfField     = "csrf"
	// SessionTTL is how long a login lasts.
	SessionTTL = 12 * time.Hour
	// loginFailuresPerMinute caps wrong-token attempts across all clients,
	// so guessing the token online is hopeless even with a short token.
	loginFailuresPerMinute = 20
	// maxRevoked bounds the logged-out session list; beyond it the oldest
	// entries go, which only matters for sessions that expire soon anyway.
	maxRevoked = 10000
)

// authenticator issues and checks sessions. A session is
// "v1.<expiry unix>.<nonce>.<mac>" where mac is HMAC-SHA256 over the rest
// with a key derived from the admin token: the cookie never holds the token,
// and changing the token ends every session.
type authenticator struct {
	token []byte
	key   []byte
	clock clock.Clock

	mu       sync.Mutex
	revoked  map[string]time.Time // nonce → expiry, for logout
	failWin  int64                // unix minute of failCount
	failures int
}

func newAuthenticator(token string, clk clock.Clock) *authenticator {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("nudge admin session v1"))
	return &authenticator{token: []byte(token), key: m.Sum(nil), clock: clk, revoked: map[string]time.Time{}}
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

// verify returns the session's nonce when the cookie value is authentic,
// unexpired and not logged out.
func (a *authenticator) verify(value string) (string, bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 4 || parts[0] != "v1" {
		return "", false
	}
	want := a.mac("session", parts[1], parts[2])
	if !hmac.Equal([]byte(want), []byte(parts[3])) {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !a.clock.Now().Before(time.Unix(exp, 0)) {
		return "", false
	}
	a.mu.Lock()
	_, gone := a.revoked[parts[2]]
	a.mu.Unlock()
	return parts[2], !gone
}

func (a *authenticator) revoke(nonce string) {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, exp := range a.revoked {
		if now.After(exp) || len(a.revoked) >= maxRevoked {
			delete(a.revoked, n)
		}
	}
	a.revoked[nonce] = now.Add(SessionTTL)
}

// allowAttempt reports whether another login attempt may be checked now.
func (a *authenticator) allowAttempt() bool {
	minute := a.clock.Now().Unix() / 60
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failWin != minute {
		a.failWin, a.failures = minute, 0
	}
	return a.failures < loginFailuresPerMinute
}

func (a *authenticator) failed() {
	a.mu.Lock()
	a.failures++
	a.mu.Unlock()
}

// Gin context keys set by requireAuth.
const (
	ctxNonce  = "admin.nonce"  // the session nonce (cookie logins)
	ctxBearer = "admin.bearer" // true for Authorization: Bearer requests
)

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
func (a *Admin) requireAuth(c *gin.Context) {
	if h := c.GetHeader("Authorization"); strings.HasPrefix(h, "Bearer ") {
		if a.auth.tokenOK(strings.TrimPrefix(h, "Bearer ")) {
			c.Set(ctxBearer, true)
			c.Next()
			return
		}
		a.unauthorized(c)
		return
	}
	if v, err := c.Cookie(sessionCookie); err == nil {
		if nonce, ok := a.auth.verify(v); ok {
			c.Set(ctxNonce, nonce)
			if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
				if !hmac.Equal([]byte(c.PostForm(csrfField)), []byte(a.auth.mac("csrf", nonce))) {
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

func (a *Admin) loginPost(c *gin.Context) {
	if !a.auth.allowAttempt() {
		a.showLogin(c, http.StatusTooManyRequests, "Too many failed attempts; wait a minute.")
		return
	}
	if !a.auth.tokenOK(c.PostForm("token")) {
		a.auth.failed()
		a.showLogin(c, http.StatusUnauthorized, "That is not the admin token.")
		return
	}
	ck, err := c.Cookie(loginCookie)
	if err != nil || ck == "" || !hmac.Equal([]byte(ck), []byte(c.PostForm(csrfField))) {
		a.showLogin(c, http.StatusForbidden, "The form expired; please log in again.")
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

func (a *Admin) logout(c *gin.Context) {
	if n := c.GetString(ctxNonce); n != "" {
		a.auth.revoke(n)
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Path: "/admin", MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
	c.Redirect(http.StatusSeeOther, "/admin/login")
}
