package proof

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/storage"
)

const forgetRule = `id: forget-probe
description: One quick send, so the outbox holds a message to the person.
trigger:
  event: checkout_started
steps:
  - wait: 1s
    send:
      template: d-forget-probe
`

func apiDo(t *testing.T, method, url string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// filesMentioning lists the files under dir whose bytes contain needle
// (case-insensitively), with a count of occurrences.
func filesMentioning(t *testing.T, dir, needle string) map[string]int {
	t.Helper()
	out := map[string]int{}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(bytes.ToLower(b), []byte(strings.ToLower(needle))); n > 0 {
			rel, _ := filepath.Rel(dir, path)
			out[rel] = n
		}
		return nil
	})
	return out
}

// TestForgetErasesEverywhere drives one person through webhooks from
// three sources and a real send (log sender), exports them, forgets them
// through the API, stops nudge and greps the raw bytes of every file in
// the data dir, bbolt's free pages included, for the address.
func TestForgetErasesEverywhere(t *testing.T) {
	keys := newESPKeys(t)
	ip := openInproc(t, confOpts{RulesGlob: "rules/*.yaml", Files: map[string]string{"rules/forget.yaml": forgetRule},
		SendGridPub: keys.sgPub, MailgunKey: keys.mg})
	stop := ip.serve(t)
	ctx := context.Background()
	const email = "forget-me@example.com"
	deliver := func(path string, body []byte, h http.Header) {
		t.Helper()
		if status, answer := post(ctx, http.DefaultClient, ip.srv.URL+path, body, h); status != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, status, answer)
		}
	}
	// Someone else, whose data must survive.
	b, h := shopifyDelivery(t, "checkouts/create", "keep-me@example.com", time.Now())
	deliver("/webhooks/shopify/main", b, h)
	for _, topic := range []string{"customers/create", "checkouts/create"} {
		b, h := shopifyDelivery(t, topic, email, time.Now())
		deliver("/webhooks/shopify/main", b, h)
	}
	// Wait for the journey's send to reach the log sender.
	deadline := time.Now().Add(20 * time.Second)
	for len(filesMentioning(t, ip.dataDir, email)) < 2 || filesMentioning(t, ip.dataDir, email)[logsender.OutboxFile] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no send reached the log sender; files mentioning the address: %v", filesMentioning(t, ip.dataDir, email))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An engagement event from the ESP about the send.
	sgBody, sgH, err := sendgrid.Sample("open", email, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sendgrid.SignWithKey(keys.sg, sgBody, sgH.Get(sendgrid.WebhookTimestampHeader))
	if err != nil {
		t.Fatal(err)
	}
	sgH.Set(sendgrid.WebhookSignatureHeader, sig)
	deliver("/webhooks/sendgrid", sgBody, sgH)
	for _, topic := range []string{"orders/create", "orders/paid"} {
		b, h := shopifyDelivery(t, topic, email, time.Now())
		deliver("/webhooks/shopify/main", b, h)
	}

	status, export := apiDo(t, http.MethodGet, ip.srv.URL+"/api/v1/profiles/"+email+"/export")
	if status != http.StatusOK {
		t.Fatalf("export: %d %s", status, export)
	}
	var ex struct {
		Records []json.RawMessage `json:"records"`
		Sends   []json.RawMessage `json:"sends"`
	}
	if err := json.Unmarshal(export, &ex); err != nil || len(ex.Records) < 3 || len(ex.Sends) < 1 {
		t.Fatalf("export holds %d records and %d sends (%v); want every record and the send", len(ex.Records), len(ex.Sends), err)
	}
	before := filesMentioning(t, ip.dataDir, email)

	if status, body := apiDo(t, http.MethodDelete, ip.srv.URL+"/api/v1/profiles/"+email); status != http.StatusOK {
		t.Fatalf("forget: %d %s", status, body)
	}
	if status, _ := apiDo(t, http.MethodGet, ip.srv.URL+"/api/v1/profiles/"+email); status != http.StatusNotFound {
		t.Errorf("profile after forget: %d, want 404", status)
	}
	if status, _ := apiDo(t, http.MethodGet, ip.srv.URL+"/api/v1/profiles/keep-me@example.com"); status != http.StatusOK {
		t.Errorf("the other person's profile after forget: %d, want 200", status)
	}
	stop()
	if err := ip.app.Close(); err != nil {
		t.Fatal(err)
	}
	after := filesMentioning(t, ip.dataDir, email)
	t.Logf("files mentioning the address before forget: %v; after: %v", before, after)
	if n := after[storage.FileName]; n > 0 {
		t.Errorf("%s still holds the address %d times after forget (live data or bbolt free pages)", storage.FileName, n)
	}
	for f, n := range after {
		if f != storage.FileName {
			t.Errorf("%s still holds the address %d times after forget: the log sender's files are not erased", f, n)
		}
	}
	db, err := storage.Open(filepath.Join(ip.dataDir, storage.FileName), storage.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Errorf("check after forget: %v", err)
	}
}

// TestRetentionPrunesOldData ingests a delivery three days ago (fake
// clock) and one now, with retention 1d: starting nudge prunes the old
// record and its raw payload and keeps the new ones.
func TestRetentionPrunesOldData(t *testing.T) {
	now := time.Now()
	clk := clock.NewFake(now.Add(-72 * time.Hour))
	ip := openInproc(t, confOpts{Extra: "retention: 1d\n", Clock: clk})
	ctx := context.Background()
	b, h := shopifyDelivery(t, "checkouts/create", "old@example.com", clk.Now())
	if status, answer := post(ctx, http.DefaultClient, ip.srv.URL+"/webhooks/shopify/main", b, h); status != http.StatusOK {
		t.Fatalf("old delivery: %d %s", status, answer)
	}
	clk.Set(now)
	b, h = shopifyDelivery(t, "checkouts/create", "new@example.com", now)
	if status, answer := post(ctx, http.DefaultClient, ip.srv.URL+"/webhooks/shopify/main", b, h); status != http.StatusOK {
		t.Fatalf("new delivery: %d %s", status, answer)
	}
	before, _ := ip.app.Store.Stats(ctx)
	stop := ip.serve(t) // prunes at start
	deadline := time.Now().Add(10 * time.Second)
	var after storage.Stats
	for {
		after, _ = ip.app.Store.Stats(ctx)
		if after.Records < before.Records || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if after.Records != before.Records-1 {
		t.Errorf("records %d → %d, want exactly the old one pruned", before.Records, after.Records)
	}
	if after.Deliveries != before.Deliveries-1 {
		t.Errorf("raw deliveries %d → %d, want exactly the old one pruned", before.Deliveries, after.Deliveries)
	}
	if p, err := ip.app.Store.ProfileByEmail(ctx, "new@example.com"); err != nil {
		t.Errorf("new profile: %v", err)
	} else if recs, _ := ip.app.Store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{}); len(recs) != 1 {
		t.Errorf("new profile keeps %d records, want 1", len(recs))
	}
	if p, err := ip.app.Store.ProfileByEmail(ctx, "old@example.com"); err == nil {
		if recs, _ := ip.app.Store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{}); len(recs) != 0 {
			t.Errorf("old profile keeps %d records past retention", len(recs))
		}
	}
}

// TestBackupWhileServing runs `nudge backup FILE` against a running nudge
// that is taking webhooks; the snapshot must open, pass bbolt's check and
// hold every record acknowledged before the backup started. Then it
// restores the snapshot the documented way (stop nudge, copy the file
// over data/nudge.db, start) and reads a profile back.
func TestBackupWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the nudge binary")
	}
	bin := nudgeBinary(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	port := freePort(t)
	conf := writeConfig(t, dir, confOpts{Port: port, DataDir: dataDir})
	p := newProc(t, bin, conf, port, filepath.Join(dir, "nudge.log"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.kill()

	var mu sync.Mutex
	var acked []string
	stopDrive := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20_000; i++ {
				select {
				case <-stopDrive:
					return
				default:
				}
				email := fmt.Sprintf("backup-%d-%d@example.com", w, i)
				b, h, err := shopifySigned("orders/create", email, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				if status, _ := post(ctx, http.DefaultClient, p.url()+"/webhooks/shopify/main", b, h); status == http.StatusOK {
					mu.Lock()
					acked = append(acked, email)
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	beforeBackup := append([]string(nil), acked...)
	mu.Unlock()
	backup := filepath.Join(dir, "snapshot.db")
	out, err := exec.CommandContext(ctx, bin, "backup", backup, "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("nudge backup: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond) // keep serving after the backup
	close(stopDrive)
	wg.Wait()
	t.Logf("nudge backup: %s; %d orders acknowledged before it, %d in all", strings.TrimSpace(string(out)), len(beforeBackup), len(acked))

	db, err := storage.Open(backup, storage.Options{Logger: quietLogger(), LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("open the snapshot: %v", err)
	}
	if err := db.Check(); err != nil {
		t.Errorf("snapshot check: %v", err)
	}
	missing := 0
	for _, email := range beforeBackup {
		if _, err := db.ProfileByEmail(ctx, email); err != nil {
			missing++
		}
	}
	db.Close()
	if missing > 0 {
		t.Errorf("%d of %d orders acknowledged before the backup are missing from it", missing, len(beforeBackup))
	}

	// Restore: stop nudge, copy the snapshot over data/nudge.db, start.
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	snap, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, storage.FileName), snap, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.start(ctx); err != nil {
		t.Fatalf("start on the restored file: %v", err)
	}
	if status, body := apiDo(t, http.MethodGet, p.url()+"/api/v1/profiles/"+beforeBackup[0]); status != http.StatusOK {
		t.Errorf("profile after restore: %d %s", status, body)
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
}
