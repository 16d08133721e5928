package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCmd runs one nudge command in-process and returns exit code, stdout
// and stderr.
func runCmd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv}, args)
	return code, out.String(), errb.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeConfig writes config.example.yaml with the listen address and data
// dir changed, beside a copy-free reference to the repo's rules.d.
func writeConfig(t *testing.T, listen string) string {
	t.Helper()
	raw, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rulesDir, err := filepath.Abs("../../rules.d")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	s = strings.Replace(s, `"${NUDGE_LISTEN:-127.0.0.1:8080}"`, `"`+listen+`"`, 1)
	s = strings.Replace(s, `"${NUDGE_DATA_DIR:-./data}"`, `"`+filepath.Join(dir, "data")+`"`, 1)
	s = strings.Replace(s, `"${NUDGE_PUBLIC_URL:-http://127.0.0.1:8080}"`, `"http://`+listen+`"`, 1)
	s = strings.Replace(s, `- "rules.d/*.yaml"`, `- "`+rulesDir+`/*.yaml"`, 1)
	path := filepath.Join(dir, "nudge.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckExampleConfig(t *testing.T) {
	code, out, errs := runCmd(t, context.Background(), "check", "-c", "../../config.example.yaml")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("check: code %d out %q err %q", code, out, errs)
	}
}

func TestCheckReportsPositions(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nudge.yaml")
	os.WriteFile(cfg, []byte("listen: \"127.0.0.1:1\"\nadmin:\n  tokn: x\nrules: [\"r/*.yaml\"]\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "r"), 0o700)
	code, _, errs := runCmd(t, context.Background(), "check", "-c", cfg)
	if code != 1 || !strings.Contains(errs, "nudge.yaml:3:3:") {
		t.Fatalf("check of a bad config: code %d stderr %q", code, errs)
	}
	os.WriteFile(cfg, []byte("admin: {token: t0ken-for-tests}\nrules: [\"r/*.yaml\"]\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "r", "bad.yaml"), []byte("id: Bad Id\ntrigger:\n  event: no_such_event\nsteps: []\n"), 0o600)
	code, _, errs = runCmd(t, context.Background(), "check", "-c", cfg)
	if code != 1 || !strings.Contains(errs, "bad.yaml:") {
		t.Fatalf("check of a bad rule: code %d stderr %q", code, errs)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, _ := runCmd(t, context.Background(), "nope"); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
}

// The README's promise: on the default config, `nudge trigger shopify
// checkouts/create --email a@example.com` against a running server yields
// a checkout_started record that `nudge profile a@example.com` shows; and
// serve stops cleanly on cancellation.
func TestServeTriggerProfile(t *testing.T) {
	listen := freePort(t)
	cfg := writeConfig(t, listen)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serveErr bytes.Buffer
	go func() {
		done <- run(ctx, &env{stdout: &bytes.Buffer{}, stderr: &serveErr, getenv: os.Getenv}, []string{"serve", "-c", cfg, "--log-level", "warn"})
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server never became ready: %v\n%s", err, serveErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, tc := range [][]string{
		{"shopify", "checkouts/create"},
		{"stripe", "checkout.session.expired"},
		{"sendgrid", "open"},
		{"mailgun", "clicked"},
		{"web", "product_viewed"},
	} {
		code, out, errs := runCmd(t, ctx, "trigger", tc[0], tc[1], "--email", "a@example.com", "-c", cfg)
		if code != 0 || !strings.Contains(out, "→ 200") {
			t.Fatalf("trigger %v: code %d out %q err %q", tc, code, out, errs)
		}
	}
	code, out, errs := runCmd(t, ctx, "profile", "a@example.com", "-c", cfg)
	if code != 0 {
		t.Fatalf("profile: %d %s", code, errs)
	}
	var p struct {
		Email   string `json:"email"`
		Records []struct {
			Kind   string `json:"kind"`
			Source string `json:"source"`
		} `json:"records"`
		Journeys []struct {
			Rule   string `json:"rule"`
			Status string `json:"status"`
		} `json:"journeys"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("profile output: %v\n%s", err, out)
	}
	kinds := map[string]bool{}
	for _, r := range p.Records {
		kinds[r.Source+"/"+r.Kind] = true
	}
	for _, want := range []string{"shopify/checkout_started", "stripe/checkout_started", "sendgrid/email_opened", "mailgun/email_clicked", "web/product_viewed"} {
		if !kinds[want] {
			t.Errorf("profile lacks %s; has %v", want, kinds)
		}
	}
	started := false
	for _, j := range p.Journeys {
		started = started || (j.Rule == "cart-abandonment" && j.Status == "waiting")
	}
	if !started {
		t.Errorf("no waiting cart-abandonment journey: %+v", p.Journeys)
	}
	if code, out, errs := runCmd(t, ctx, "explain", "a@example.com", "-c", cfg); code != 0 || !strings.Contains(out, "cart-abandonment") {
		t.Errorf("explain: %d %q %q", code, out, errs)
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	if code, out, errs := runCmd(t, ctx, "backup", backup, "-c", cfg); code != 0 {
		t.Errorf("backup: %d %q %q", code, out, errs)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, serveErr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}
	// With the server stopped, profile opens the data dir directly.
	code, out, errs = runCmd(t, context.Background(), "profile", "a@example.com", "-c", cfg)
	if code != 0 || !strings.Contains(out, "checkout_started") {
		t.Fatalf("profile without a server: %d %s", code, errs)
	}
	if code, _, _ := runCmd(t, context.Background(), "profile", "nobody@example.com", "-c", cfg); code != 1 {
		t.Fatalf("unknown profile exit %d", code)
	}
	fmt.Fprint(os.Stderr, "")
}
