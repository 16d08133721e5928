package proof

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/storage"
)

// espRecorder is a SendGrid Mail Send stand-in that counts every message
// it accepts by our send id and by (recipient, template).
type espRecorder struct {
	mu       sync.Mutex
	bySendID map[string]int
	byStep   map[string]int // email | template → count
	total    int
}

func newESP() *espRecorder {
	return &espRecorder{bySendID: map[string]int{}, byStep: map[string]int{}}
}

func (e *espRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
		http.Error(w, `{"errors":[{"message":"not found"}]}`, http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m struct {
		TemplateID       string `json:"template_id"`
		Personalizations []struct {
			To []struct {
				Email string `json:"email"`
			} `json:"to"`
		} `json:"personalizations"`
		CustomArgs map[string]string `json:"custom_args"`
	}
	if err := json.Unmarshal(body, &m); err != nil || len(m.Personalizations) == 0 || len(m.Personalizations[0].To) == 0 {
		http.Error(w, `{"errors":[{"message":"bad request"}]}`, http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.total++
	e.bySendID[m.CustomArgs[connectors.ArgSendID]]++
	e.byStep[m.Personalizations[0].To[0].Email+"|"+m.TemplateID]++
	n := e.total
	e.mu.Unlock()
	w.Header().Set("X-Message-Id", fmt.Sprintf("esp-%d", n))
	w.WriteHeader(http.StatusAccepted)
}

func (e *espRecorder) snapshot() (bySend, byStep map[string]int, total int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	bySend, byStep = map[string]int{}, map[string]int{}
	for k, v := range e.bySendID {
		bySend[k] = v
	}
	for k, v := range e.byStep {
		byStep[k] = v
	}
	return bySend, byStep, e.total
}

const crashRule = `id: crash-reminder
description: Two quick reminders after a checkout, for the crash test.
trigger:
  event: checkout_started
exit:
  - event: order_placed
steps:
  - wait: 2s
    send:
      template: d-crash-step-1
  - wait: 2s
    send:
      template: d-crash-step-2
`

// TestCrashRecovery runs nudge as a child process, drives signed Shopify
// checkouts (each a new consenting customer, each starting a two-step
// journey) and due sends at load, SIGKILLs it at random moments 20 times
// and restarts it each time. Afterwards: every webhook answered 200 is
// stored, bbolt's consistency check passes, the ESP saw no journey step
// twice, and every due step was sent or is `unknown` in the outbox (the
// documented outcome of a crash between marking a send `sending` and the
// provider's answer).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs nudge as a child process for about two minutes")
	}
	const kills = 20
	bin := nudgeBinary(t)
	esp := newESP()
	espSrv := httptest.NewServer(esp)
	defer espSrv.Close()

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "crash.yaml"), []byte(crashRule), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := writeConfig(t, dir, confOpts{Port: port, DataDir: dataDir, RulesGlob: "rules/*.yaml", ESPURL: espSrv.URL})
	p := newProc(t, bin, conf, port, filepath.Join(dir, "nudge.log"))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.kill()

	// Drive webhooks until the kills are over.
	var (
		mu       sync.Mutex
		acked    []string // emails whose checkout got 200
		attempts atomic.Int64
		failures atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	// Two workers pausing between requests offer ~30–40 checkouts/s: enough
	// that kills land mid-request and mid-send, little enough that the
	// journeys (two sends each) can all come due and drain within the test.
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				email := fmt.Sprintf("crash-%d-%d@example.com", w, i)
				body, h, err := shopifySigned("checkouts/create", email, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				attempts.Add(1)
				status, _ := post(ctx, client, p.url()+"/webhooks/shopify/main", body, h)
				time.Sleep(50 * time.Millisecond)
				if status == http.StatusOK {
					mu.Lock()
					acked = append(acked, email)
					mu.Unlock()
				} else {
					failures.Add(1)
					time.Sleep(20 * time.Millisecond) // down: do not spin
				}
			}
		}()
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
	killAt := make([]time.Duration, 0, kills)
	for k := 0; k < kills; k++ {
		d := 300*time.Millisecond + time.Duration(rng.Int64N(int64(2700*time.Millisecond)))
		time.Sleep(d)
		killAt = append(killAt, d)
		p.kill()
		if err := p.start(ctx); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("restart %d: %v", k+1, err)
		}
	}
	close(stop)
	wg.Wait()

	// Let every journey's two steps (2 s + 2 s) become due and run.
	mu.Lock()
	want := len(acked) * 2
	mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	last, stableSince := -1, time.Now()
	for time.Now().Before(deadline) {
		_, byStep, total := esp.snapshot()
		if total != last {
			last, stableSince = total, time.Now()
		}
		// Count only acknowledged checkouts' steps: a webhook whose answer
		// a kill cut off may still have been stored, and its steps count
		// in total, so total can reach want while an acknowledged step is
		// still due. Steps that ended unknown never arrive; for those the
		// wait ends once nothing has arrived for 8 s.
		reached := 0
		for _, email := range acked {
			for step := 1; step <= 2; step++ {
				reached += min(byStep[fmt.Sprintf("%s|d-crash-step-%d", email, step)], 1)
			}
		}
		if reached >= want || time.Since(stableSince) > 8*time.Second {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := p.stop(); err != nil {
		t.Errorf("clean stop after the crashes: %v", err)
	}

	db, err := storage.Open(filepath.Join(dataDir, storage.FileName), storage.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open the store after the crashes: %v", err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Errorf("bbolt consistency check: %v", err)
	}

	// 1. Every 200 is stored.
	missing := 0
	for _, email := range acked {
		prof, err := db.ProfileByEmail(ctx, email)
		if err != nil {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged checkout of %s not stored: %v", email, err)
			}
			continue
		}
		recs, err := db.RecordsByProfile(ctx, prof.ID, storage.RecordQuery{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range recs {
			found = found || r.Kind == behavior.CheckoutStarted
		}
		if !found {
			missing++
			t.Errorf("profile of %s has no checkout_started record", email)
		}
	}

	// 2. No step sent twice.
	bySend, byStep, total := esp.snapshot()
	for id, n := range bySend {
		if n > 1 {
			t.Errorf("send %s reached the ESP %d times", id, n)
		}
	}
	for k, n := range byStep {
		if n > 1 {
			t.Errorf("journey step %s reached the ESP %d times", k, n)
		}
	}

	// 3. No due step lost: sent, or unknown in the outbox.
	sends, err := db.ListSends(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{} // email|step → status
	counts := map[string]int{}
	for _, s := range sends {
		status[fmt.Sprintf("%s|%d", s.Email, s.Step)] = s.Status
		counts[s.Status]++
	}
	lost := 0
	for _, email := range acked {
		for step := 1; step <= 2; step++ {
			if byStep[fmt.Sprintf("%s|d-crash-step-%d", email, step)] == 1 {
				continue
			}
			st := status[fmt.Sprintf("%s|%d", email, step)]
			if st == storage.SendUnknown {
				continue
			}
			lost++
			if lost <= 10 {
				t.Errorf("step %d for %s never reached the ESP (outbox status %q)", step, email, st)
			}
		}
	}
	// A kill catches the sends between their "sending" commit and their
	// "sent" commit; they end unknown (never repeated). How many depends
	// on how many deliveries run at once: measured 1.6 per kill without
	// -race and 4.2 with it (64 scheduler workers, the backlog after each
	// restart); ten per kill leaves room for a slow CI machine while still
	// failing if unknown stopped being the exception.
	unknown := counts[storage.SendUnknown]
	if max := kills * 10; unknown > max {
		t.Errorf("%d sends ended unknown after %d kills; expected at most the few in flight per kill (%d)", unknown, kills, max)
	}
	sort.Slice(killAt, func(i, j int) bool { return killAt[i] < killAt[j] })
	t.Logf("kills %d (intervals %v … %v); webhooks attempted %d, acknowledged %d, failed %d; ESP messages %d (want %d); outbox by status %v; missing records %d; lost steps %d",
		kills, killAt[0], killAt[len(killAt)-1], attempts.Load(), len(acked), failures.Load(), total, want, counts, missing, lost)
}
