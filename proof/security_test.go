package proof

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors/web"
)

// publicRoutes are the routes that are meant to answer without the admin
// token, each with the authentication it has instead. A route missing
// from this list and outside /api and /admin fails the test, so a new
// route has to be classified here.
var publicRoutes = map[string]string{
	"GET /healthz":                  "none (liveness)",
	"GET /readyz":                   "none (readiness)",
	"GET /metrics":                  "none (Prometheus)",
	"POST /webhooks/:source":        "provider signature",
	"POST /webhooks/:source/:store": "provider signature",
	"GET /t.js":                     "none (storefront script)",
	"HEAD /t.js":                    "none (storefront script)",
	"GET /u/:token":                 "signed token",
	"POST /u/:token":                "signed token",
	"GET /admin/login":              "login form",
	"POST /admin/login":             "admin token in the form",
	"GET /admin/static/*filepath":   "none (static assets)",
}

func routeKey(method, path string) string { return method + " " + path }

func fillParams(path string) string {
	r := strings.NewReplacer(":email", "someone@example.com", ":id", "x1", ":token", "t0k3n", ":source", "shopify",
		":store", "main", "*filepath", "app.css")
	return r.Replace(path)
}

// TestEveryRouteAuthenticated walks the router: every /api and /admin
// route refuses a missing, wrong and differently-cased token; webhooks
// refuse unsigned posts; tracking refuses a wrong write key; every other
// route is on the public list.
func TestEveryRouteAuthenticated(t *testing.T) {
	ip := openInproc(t, confOpts{})
	routes := ip.app.Server.Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes", len(routes))
	}
	hasAPI := false
	for _, r := range routes {
		key := routeKey(r.Method, r.Path)
		url := ip.srv.URL + fillParams(r.Path)
		switch {
		case strings.HasPrefix(r.Path, "/api/"), strings.HasPrefix(r.Path, "/admin") && publicRoutes[key] == "":
			hasAPI = hasAPI || strings.HasPrefix(r.Path, "/api/")
			for name, auth := range map[string]string{
				"no token":     "",
				"wrong token":  "Bearer wrong-" + testAdminToken,
				"token prefix": "Bearer " + testAdminToken[:len(testAdminToken)-1],
				"upper-cased":  "Bearer " + strings.ToUpper(testAdminToken),
				"basic auth":   "Basic " + testAdminToken,
			} {
				req, _ := http.NewRequest(r.Method, url, strings.NewReader("{}"))
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				ok := resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
				if strings.HasPrefix(r.Path, "/admin") && resp.StatusCode == http.StatusSeeOther {
					ok = strings.HasPrefix(resp.Header.Get("Location"), "/admin/login")
				}
				// The admin pages throttle wrong bearer tokens per client:
				// after 20 a minute this walk's guesses get 429, a refusal
				// too (and still never the page).
				if strings.HasPrefix(r.Path, "/admin") && resp.StatusCode == http.StatusTooManyRequests && name != "no token" {
					ok = true
				}
				if !ok {
					t.Errorf("%s with %s: %d, want 401 (or a redirect to the login page)", key, name, resp.StatusCode)
				}
			}
		case strings.HasPrefix(r.Path, "/v1/"):
			if r.Method == http.MethodOptions {
				continue // CORS preflight carries no credentials by design
			}
			call := `{"type":"track","event":"x","anonymousId":"a","userId":"u","previousId":"p","groupId":"g","name":"n"}`
			if typ := web.Routes()[strings.TrimPrefix(r.Path, "/v1/")]; typ == "batch" {
				call = `{"batch":[` + call + `]}`
			}
			req, _ := http.NewRequest(r.Method, url, strings.NewReader(call))
			req.Header.Set("Content-Type", "application/json")
			req.SetBasicAuth("wrong-key", "")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with a wrong write key: %d, want 401", key, resp.StatusCode)
			}
		default:
			if _, ok := publicRoutes[key]; !ok {
				t.Errorf("%s answers without the admin token and is not on the public list: classify it", key)
			}
		}
	}
	if !hasAPI {
		t.Error("no /api route found")
	}
	// Unsigned deliveries to every webhook source are refused.
	for _, path := range []string{"/webhooks/shopify/main", "/webhooks/woocommerce/woo", "/webhooks/stripe", "/webhooks/sendgrid", "/webhooks/mailgun"} {
		status, body := post(context.Background(), http.DefaultClient, ip.srv.URL+path, []byte(`{"id":1,"email":"x@example.com"}`), http.Header{"Content-Type": {"application/json"}})
		if status != http.StatusUnauthorized && status != http.StatusBadRequest {
			t.Errorf("unsigned POST %s: %d %s, want 401", path, status, body)
		}
	}
}

// TestBodyLimitsEverywhere posts 2 MiB to every public POST route: each
// answers 4xx without reading it all into the store.
func TestBodyLimitsEverywhere(t *testing.T) {
	ip := openInproc(t, confOpts{})
	big := bytes.Repeat([]byte("a"), 2<<20)
	for _, r := range ip.app.Server.Routes() {
		if r.Method != http.MethodPost || strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if strings.HasPrefix(r.Path, "/v1/") {
			h = trackingHeader()
		}
		status, _ := post(context.Background(), http.DefaultClient, ip.srv.URL+fillParams(r.Path), big, h)
		if status < 400 || status >= 500 {
			t.Errorf("POST %s with 2 MiB: %d, want 4xx", r.Path, status)
		}
	}
}

// TestTokensUnguessable checks the identify tokens' authentication and
// that forged or random unsubscribe tokens unsubscribe nobody.
func TestTokensUnguessable(t *testing.T) {
	secret := app.TokenSecret(&config.Config{Admin: config.Admin{Token: testAdminToken}})
	exp := time.Now().Add(time.Hour)
	tok := web.SignIdentity(secret, "ann@example.com", exp)
	if got, err := web.VerifyIdentity(secret, tok, time.Now()); err != nil || got != "ann@example.com" {
		t.Fatalf("genuine token: %q %v", got, err)
	}
	if tok2 := web.SignIdentity(secret, "ann@example.com", exp); tok2 == tok {
		t.Error("two tokens for the same email are identical: they are linkable and guessable")
	}
	if strings.Contains(tok, "ann") {
		t.Error("the token shows the email")
	}
	for i := len("v1."); i < len(tok); i += 7 {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, err := web.VerifyIdentity(secret, string(b), time.Now()); err == nil {
			t.Errorf("token changed at byte %d still verifies", i)
		}
	}
	if _, err := web.VerifyIdentity([]byte("another secret"), tok, time.Now()); err == nil {
		t.Error("token verifies under another secret")
	}
	if _, err := web.VerifyIdentity(secret, web.SignIdentity(secret, "ann@example.com", time.Now().Add(-time.Minute)), time.Now()); err == nil {
		t.Error("expired token verifies")
	}

	ip := openInproc(t, confOpts{})
	before, _ := ip.app.Store.Stats(context.Background())
	for _, forged := range []string{"x", strings.Repeat("A", 64), "v1." + strings.Repeat("A", 80), tok} {
		status, _ := post(context.Background(), http.DefaultClient, ip.srv.URL+"/u/"+forged, []byte("List-Unsubscribe=One-Click"),
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
		if status < 400 || status >= 500 {
			t.Errorf("unsubscribe with forged token %.20q: %d, want 4xx", forged, status)
		}
	}
	after, _ := ip.app.Store.Stats(context.Background())
	if after.Records != before.Records || after.Suppressions != before.Suppressions {
		t.Errorf("forged unsubscribe tokens changed the store: %+v → %+v", before, after)
	}
}

// TestNoOpenRedirect tries the admin login's next parameter with
// off-site targets.
func TestNoOpenRedirect(t *testing.T) {
	ip := openInproc(t, confOpts{})
	hasLogin := false
	for _, r := range ip.app.Server.Routes() {
		hasLogin = hasLogin || routeKey(r.Method, r.Path) == "POST /admin/login"
	}
	if !hasLogin {
		t.Skip("the admin page is not mounted by app.Open (see the report): nothing redirects")
	}
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "/admin/..//evil.example", "/admin/\r\nLocation: https://evil.example"} {
		form := "token=" + testAdminToken + "&next=" + next
		req, _ := http.NewRequest(http.MethodPost, ip.srv.URL+"/admin/login", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "" && (!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.Contains(loc, "evil")) {
			t.Errorf("next=%q redirects to %q", next, loc)
		}
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretsNeverLogged drives good and bad requests through nudge with
// debug logging and requires that no secret appears in the log, and no
// full email address at info level or above.
func TestSecretsNeverLogged(t *testing.T) {
	dir := t.TempDir()
	keys := newESPKeys(t)
	path := writeConfig(t, dir, confOpts{Port: 1, DataDir: filepath.Join(dir, "data"), ESPURL: "http://127.0.0.1:1",
		SendGridPub: keys.sgPub, MailgunKey: keys.mg})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.Open(context.Background(), cfg, app.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.Server.Handler())
	defer srv.Close()
	ctx := context.Background()
	for _, d := range connectorDeliveries(t, keys)["shopify"][:6] {
		post(ctx, http.DefaultClient, srv.URL+d.path, d.body, d.h)
		bad := d.h.Clone()
		bad.Set("X-Shopify-Hmac-Sha256", "AAAA")
		post(ctx, http.DefaultClient, srv.URL+d.path, d.body, bad)
	}
	for _, auth := range []string{"Bearer " + testAdminToken, "Bearer wrong"} {
		for _, p := range []string{"/api/v1/profiles/dup-ann@example.com", "/api/v1/sends", "/api/v1/stats"} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
			req.Header.Set("Authorization", auth)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	out := logs.String()
	if out == "" {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	for name, secret := range map[string]string{"admin token": testAdminToken, "shopify secret": testSecret, "stripe secret": testStripe,
		"write key": testWriteKey, "sendgrid api key": "SG.proof-key", "mailgun signing key": keys.mg} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the log", name)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["level"] == "DEBUG" {
			continue
		}
		if strings.Contains(line, "@example.com") {
			t.Errorf("a full email address is logged at %v: %.300s", rec["level"], line)
		}
	}
}

// secretish names identifiers that hold secrets or MACs.
func secretish(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"secret", "token", "hmac", "mac", "signature", "sig", "digest", "writekey", "apikey", "password"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// TestSecretsComparedInConstantTime scans nudge's non-test sources for
// == / != / bytes.Equal on secret-looking operands (other than emptiness
// checks): secrets, MACs and tokens must go through hmac.Equal or
// subtle.ConstantTimeCompare.
func TestSecretsComparedInConstantTime(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	operandName := func(e ast.Expr) string {
		switch x := e.(type) {
		case *ast.Ident:
			return x.Name
		case *ast.SelectorExpr:
			return x.Sel.Name
		case *ast.CallExpr:
			if s, ok := x.Fun.(*ast.SelectorExpr); ok {
				return s.Sel.Name
			}
		}
		return ""
	}
	trivial := func(e ast.Expr) bool {
		switch x := e.(type) {
		case *ast.BasicLit:
			return true // comparing with a literal: an emptiness or constant check, not a secret
		case *ast.Ident:
			return x.Name == "nil"
		case *ast.CallExpr:
			if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "len" {
				return true
			}
		}
		return false
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "bench" || rel == "proof" || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return nil // a file mid-edit by someone else: skip rather than fail
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if x.Op != token.EQL && x.Op != token.NEQ {
					return true
				}
				if trivial(x.X) || trivial(x.Y) {
					return true
				}
				if secretish(operandName(x.X)) && secretish(operandName(x.Y)) {
					t.Errorf("%s: %s compared with %s, not in constant time", fset.Position(x.Pos()), operandName(x.X), x.Op)
				}
			case *ast.CallExpr:
				s, ok := x.Fun.(*ast.SelectorExpr)
				if !ok || len(x.Args) != 2 {
					return true
				}
				if pkg, ok := s.X.(*ast.Ident); ok && pkg.Name == "bytes" && s.Sel.Name == "Equal" &&
					(secretish(operandName(x.Args[0])) || secretish(operandName(x.Args[1]))) {
					t.Errorf("%s: bytes.Equal on %s/%s; use hmac.Equal", fset.Position(x.Pos()), operandName(x.Args[0]), operandName(x.Args[1]))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTrackingRateLimits checks the tracking API's per-IP limit both
// ways: a configured limit answers 429 past its burst, and
// `rate_per_ip: 0`, documented as "0 means unlimited", never does.
func TestTrackingRateLimits(t *testing.T) {
	cases := []struct {
		name     string
		tracking string
		want429  bool
	}{
		{"limit 5/s", "rate_per_ip: 5", true},
		{"0 means unlimited", "rate_per_ip: 0", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ip := openInproc(t, confOpts{Tracking: c.tracking})
			limited := 0
			for i := range 120 {
				body := []byte(fmt.Sprintf(`{"type":"track","event":"Product Viewed","anonymousId":"rl-%d","messageId":"rl-%d"}`, i, i))
				if status, _ := post(context.Background(), http.DefaultClient, ip.srv.URL+"/v1/track", body, trackingHeader()); status == http.StatusTooManyRequests {
					limited++
				}
			}
			if c.want429 && limited == 0 {
				t.Error("120 calls in a burst were never limited")
			}
			if !c.want429 && limited > 0 {
				t.Errorf("%d of 120 calls got 429 with %q", limited, c.tracking)
			}
		})
	}
}
