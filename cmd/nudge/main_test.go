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
// startServe runs `nudge serve` in-process on a fresh config (with extra
// serve flags) and waits until it is ready; the returned channel yields
// its exit code once ctx is cancelled.
func startServe(t *testing.T, ctx context.Context, cancel context.CancelFunc, extra ...string) (cfg string, done <-chan int, serveErr *bytes.Buffer) {
	t.Helper()
	listen := freePort(t)
	cfg = writeConfig(t, listen)
	ch := make(chan int, 1)
	serveErr = &bytes.Buffer{}
	args := append([]string{"serve", "-c", cfg, "--log-level", "warn"}, extra...)
	go func() {
		ch <- run(ctx, &env{stdout: &bytes.Buffer{}, stderr: serveErr, getenv: os.Getenv}, args)
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
	return cfg, ch, serveErr
}

// stopServe stops a server startServe started and fails unless it exits
// cleanly.
func stopServe(t *testing.T, cancel context.CancelFunc, done <-chan int, serveErr *bytes.Buffer) {
	t.Helper()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, serveErr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestImportThroughServer: with a server running, `nudge import` goes
// through its API in pieces, and reports and exits as it does without a
// server: the file's own line numbers, duplicates on re-import, exit 1
// when rows were rejected; CSV exports go too.
func TestImportThroughServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, done, serveErr := startServe(t, ctx, cancel)

	var lines []string
	for i := 1; i <= 40; i++ {
		if i == 27 {
			lines = append(lines, `{"kind":"order_placed","email":"no-time@example.com"}`) // no at: rejected
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"kind":"order_placed","at":"2024-03-%02dT10:00:00Z","email":"c%d@example.com","value":%d,"currency":"USD"}`, i%28+1, i, 1000+i))
	}
	file := filepath.Join(t.TempDir(), "history.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	importCmd := func() (int, string, string) {
		var out, errb bytes.Buffer
		// 500-byte pieces: the 40 lines go in about eight requests.
		code := run(ctx, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv, importChunk: 500}, []string{"import", file, "-c", cfg})
		return code, out.String(), errb.String()
	}
	code, out, errs := importCmd()
	if code != 1 || !strings.Contains(out, "imported 39 records, 0 duplicates, from 40 rows in 1 file(s); rejected 1 rows") || !strings.Contains(out, "history.ndjson:27: ") {
		t.Fatalf("import: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if n := strings.Count(errs, "lines sent"); n < 5 {
		t.Errorf("%d progress lines, want one per piece:\n%s", n, errs)
	}
	if code, out, errs = importCmd(); code != 1 || !strings.Contains(out, "imported 0 records, 39 duplicates") {
		t.Errorf("re-import: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	csv, err := filepath.Abs("../../importer/testdata/shopify_orders.csv")
	if err != nil {
		t.Fatal(err)
	}
	// The fixture holds good orders and four bad rows on purpose.
	if code, out, errs := runCmd(t, ctx, "import", csv, "-c", cfg); code != 1 || !strings.Contains(out, "imported 9 records") || !strings.Contains(out, "shopify_orders.csv:11: ") {
		t.Errorf("CSV import through the server: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	stopServe(t, cancel, done, serveErr)
}

func TestServeTriggerProfile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, done, serveErr := startServe(t, ctx, cancel)

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

	stopServe(t, cancel, done, serveErr)
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

// A server started with --data-dir keeps its dev webhook keys there;
// trigger (like the other commands that read the data dir) takes the same
// flag to find them.
func TestTriggerDataDirFlag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "elsewhere")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, done, serveErr := startServe(t, ctx, cancel, "--data-dir", dir)
	for _, src := range [][]string{{"sendgrid", "open"}, {"mailgun", "clicked"}} {
		code, out, errs := runCmd(t, ctx, "trigger", src[0], src[1], "--email", "d@example.com", "-c", cfg, "--data-dir", dir)
		if code != 0 || !strings.Contains(out, "→ 200") {
			t.Errorf("trigger %v --data-dir: %d %q %q", src, code, out, errs)
		}
	}
	stopServe(t, cancel, done, serveErr)
}
