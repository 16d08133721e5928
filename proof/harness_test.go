package proof

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors/shopify"
)

const (
	testSecret     = "proof-shopify-secret"
	testAdminToken = "proof-admin-token-0123456789abcdef"
	testWriteKey   = "proof-write-key"
	testStripe     = "whsec_proof"
)

// builtNudge builds cmd/nudge once per test process: the crash and backup
// tests both run it as a child process, and a build takes tens of seconds
// on a loaded 2-core machine. TestMain removes it afterwards.
type builtNudge struct {
	once      sync.Once
	dir, path string
	err       error
}

func (b *builtNudge) get() (string, error) {
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "nudge-proof-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "nudge")
		cmd := exec.Command("go", "build", "-o", b.path, "github.com/nudge-email/nudge/cmd/nudge")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	return b.path, b.err
}

// testNudge is this test process's binary (test-only state, see builtNudge).
var testNudge builtNudge

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if testNudge.dir != "" {
		_ = os.RemoveAll(testNudge.dir)
	}
	os.Exit(code)
}

func nudgeBinary(t *testing.T) string {
	t.Helper()
	bin, err := testNudge.get()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// confOpts are the knobs the tests turn in the generated config.
type confOpts struct {
	Port      int
	DataDir   string
	RulesGlob string // "" = no rules
	ESPURL    string // SendGrid api_base; "" = log sender
	// SendGridPub and MailgunKey verify ESP webhooks (base64 DER P-256
	// public key; signing key); empty = the dev keys of the data dir.
	SendGridPub, MailgunKey string
	Extra                   string // appended YAML
	// Tracking is extra YAML inside the tracking block ("rate_per_ip: 0").
	Tracking string
	// Files are written next to the config (rule files), by relative path.
	Files map[string]string
	// Clock drives an in-process nudge (default: the real clock).
	Clock clock.Clock
}

func writeConfig(t *testing.T, dir string, o confOpts) string {
	t.Helper()
	provider := "log"
	sg := fmt.Sprintf("\n  sendgrid: { webhook_public_key: %q }", o.SendGridPub)
	if o.ESPURL != "" {
		provider = "sendgrid"
		sg = fmt.Sprintf("\n  sendgrid: { api_key: SG.proof-key, api_base: %q, webhook_public_key: %q }", o.ESPURL, o.SendGridPub)
	}
	sg += fmt.Sprintf("\n  mailgun: { webhook_signing_key: %q }", o.MailgunKey)
	rules := "[]"
	if o.RulesGlob != "" {
		rules = fmt.Sprintf("[%q]", o.RulesGlob)
	}
	y := fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %q
public_url: http://127.0.0.1:%d
admin: { token: %q }
stores:
  - { id: main, platform: shopify, name: Proof Store, url: "https://shop.example", currency: USD, webhook_secret: %q }
  - { id: woo, platform: woocommerce, name: Proof Woo, url: "https://woo.example", currency: USD, webhook_secret: %q }
stripe: { webhook_secret: %q }
tracking:
  write_key: %q
  allowed_origins: ["https://shop.example"]
  %s
email:
  provider: %s
  from: { email: shop@shop.example, name: Proof Store }%s
policies:
  require_consent: true
  frequency_cap: { max: 0 }
rules: %s
%s`, o.Port, o.DataDir, o.Port, testAdminToken, testSecret, testSecret, testStripe, testWriteKey, o.Tracking, provider, sg, rules, o.Extra)
	path := filepath.Join(dir, "nudge.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, content := range o.Files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// proc is nudge running as a child process.
type proc struct {
	t    *testing.T
	bin  string
	conf string
	port int
	log  *os.File
	cmd  *exec.Cmd
	done chan error
}

func newProc(t *testing.T, bin, conf string, port int, logPath string) *proc {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &proc{t: t, bin: bin, conf: conf, port: port, log: f}
}

func (p *proc) url() string { return fmt.Sprintf("http://127.0.0.1:%d", p.port) }

// start runs `nudge serve` and waits until /readyz answers, retrying while
// the previous instance's port or file lock is still held.
func (p *proc) start(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		cmd := exec.Command(p.bin, "serve", "-c", p.conf, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = p.log, p.log
		if err := cmd.Start(); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		p.cmd, p.done = cmd, done
		if p.waitReady(ctx, done, 20*time.Second) {
			return nil
		}
		_ = cmd.Process.Kill()
		<-done
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nudge did not become ready within 30 s (see %s)", p.log.Name())
}

func (p *proc) waitReady(ctx context.Context, done chan error, max time.Duration) bool {
	c := &http.Client{Timeout: time.Second}
	end := time.Now().Add(max)
	for time.Now().Before(end) {
		select {
		case err := <-done:
			done <- err // exited (port busy, lock held): let start retry
			return false
		case <-ctx.Done():
			return false
		default:
		}
		resp, err := c.Get(p.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

// kill SIGKILLs the process and reaps it.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// stop asks for a clean shutdown (SIGTERM) and waits for it.
func (p *proc) stop() error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.cmd = nil
		return err
	case <-time.After(40 * time.Second):
		p.kill()
		return fmt.Errorf("nudge did not stop within 40 s of SIGTERM")
	}
}

// post sends a prepared request and returns the status (0 on a transport
// error) and the answer body.
func post(ctx context.Context, c *http.Client, url string, body []byte, h http.Header) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header = h.Clone()
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, b
}

// shopifyDelivery builds a signed Shopify delivery of topic for email.
func shopifyDelivery(t testing.TB, topic, email string, now time.Time) ([]byte, http.Header) {
	t.Helper()
	body, h, err := shopifySigned(topic, email, now)
	if err != nil {
		t.Fatal(err)
	}
	return body, h
}

// shopifySigned is shopifyDelivery for goroutines, which must not call
// t.Fatal.
func shopifySigned(topic, email string, now time.Time) ([]byte, http.Header, error) {
	body, h, err := shopify.Sample(topic, email, now)
	if err != nil {
		return nil, nil, err
	}
	h.Set(shopify.HeaderHmac, shopify.Sign(testSecret, body))
	return body, h, nil
}

// inproc is nudge built in-process (app.Open) behind an httptest server;
// the scheduler does not run unless serve is used instead.
type inproc struct {
	dataDir string
	app     *app.App
	srv     *httptest.Server
	cfg     *config.Config
}

// serve runs the scheduler and background work (app.Serve on a spare
// loopback port) until the returned stop is called.
func (ip *inproc) serve(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ip.app.Serve(ctx, "127.0.0.1:0") }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openInproc opens nudge on a fresh data dir with the rules of glob ("" =
// none) and extra YAML.
func openInproc(t *testing.T, o confOpts) *inproc {
	t.Helper()
	dir := t.TempDir()
	o.Port, o.DataDir = 1, filepath.Join(dir, "data")
	path := writeConfig(t, dir, o)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.Options{Logger: quietLogger(), Clock: o.Clock})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Server.Handler())
	ip := &inproc{app: a, srv: srv, cfg: cfg, dataDir: o.DataDir}
	t.Cleanup(func() {
		srv.Close()
		_ = a.Close()
	})
	return ip
}

// repoRoot is the module root, for rules.d and fixtures.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}
