// Command sched measures scheduler dispatch: how many due journey steps
// per second nudge turns into sends through the log sender.
//
// Phase 1 (not measured) runs nudge on a fake clock stopped an hour in the
// past, imports N checkout_started records for N customers and lets the
// scheduler evaluate them, so N journeys each wait on one step. Phase 2
// reopens the same data dir on the real clock, where every step is long
// due, and times the scheduler until all N messages are in the log sender's outbox.
//
//	go run ./bench/sched -n 20000
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	_ "net/http/pprof" // -pprof profiles the dispatch phase
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/storage"
)

const rule = `id: sched-bench
description: One step per checkout, for the dispatch benchmark.
trigger:
  event: checkout_started
steps:
  - wait: 10m
    send:
      template: d-sched-bench
`

func main() {
	n := flag.Int("n", 20000, "journeys (due steps)")
	dir := flag.String("dir", "", "work dir (default: a new temp dir, removed afterwards)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long per phase")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the dispatch phase to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the dispatch phase to this file")
	hold := flag.Duration("max-batch-delay", 2*time.Millisecond, "storage.max_batch_delay (0: commit groups without holding them)")
	returning := flag.Bool("returning", false, "customers known before their checkouts, which come in shuffled order: the profiles of steps due together are scattered over the store, as a shop's returning customers are")
	flag.Parse()
	app.TuneGC(os.Getenv) // as the nudge binary runs
	if *memProfile != "" {
		// The allocation profile is cumulative from the first sample:
		// sample nothing until the dispatch phase, or phase 1's
		// evaluations would be counted as the scheduler's.
		runtime.MemProfileRate = 0
	}
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }()
	}
	if err := run(*n, *dir, *timeout, *cpuProfile, *memProfile, *hold, *returning); err != nil {
		fmt.Fprintln(os.Stderr, "sched:", err)
		os.Exit(1)
	}
}

func run(n int, dir string, timeout time.Duration, cpuProfile, memProfile string, hold time.Duration, returning bool) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "nudge-sched-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "sched.yaml"), []byte(rule), 0o600); err != nil {
		return err
	}
	conf := fmt.Sprintf(`data_dir: %q
admin: { token: sched-bench-token-0123456789 }
stores:
  - { id: main, platform: shopify, name: Bench, url: "https://example.com", currency: USD, webhook_secret: x }
tracking: { write_key: k }
email:
  provider: log
  from: { email: shop@example.com, name: Bench }
policies:
  require_consent: false
  frequency_cap: { max: 0 }
rules: ["rules/*.yaml"]
storage: { max_batch_delay: %s }
`, filepath.Join(dir, "data"), hold)
	confPath := filepath.Join(dir, "nudge.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(confPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	past := time.Now().Add(-time.Hour)

	// Phase 1: N journeys waiting on their step, on a stopped clock.
	start := time.Now()
	fake := clock.NewFake(past)
	a, err := app.Open(context.Background(), cfg, app.Options{Logger: logger, Clock: fake})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, "127.0.0.1:0") }()
	// Checkouts a millisecond apart, as a shop's arrive (never two at the
	// same instant): journeys start, and their steps fall due, in the
	// order of the checkouts.
	var body bytes.Buffer
	who := make([]int, n) // the customer of each checkout, in checkout order
	for i := range who {
		who[i] = i
	}
	if returning {
		// Every customer exists (profiles created in order 0…n-1) before
		// the checkouts come in a shuffled order.
		for i := range n {
			fmt.Fprintf(&body, `{"id":"sc-%d","kind":"customer_updated","source":"bench","store":"main","at":%q,"email":"sb%d@example.com"}`+"\n",
				i, past.Add(-2*time.Hour+time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i)
		}
		rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { who[i], who[j] = who[j], who[i] })
	}
	for i, c := range who {
		fmt.Fprintf(&body, `{"id":"sb-%d","kind":"checkout_started","source":"bench","store":"main","at":%q,"email":"sb%d@example.com","value":5000,"currency":"USD"}`+"\n",
			i, past.Add(-time.Minute+time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), c)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/import", &body)
	req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
	rec := httptest.NewRecorder()
	a.Server.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		cancel()
		<-done
		a.Close()
		return fmt.Errorf("import: %d %s", rec.Code, rec.Body.String())
	}
	waitFor := func(what string, cond func(map[storage.JobState]int) bool) error {
		end := time.Now().Add(timeout)
		for {
			c, err := a.Store.CountJobs(context.Background())
			if err != nil {
				return err
			}
			if cond(c) {
				return nil
			}
			if time.Now().After(end) {
				return fmt.Errorf("%s: timed out with jobs %v", what, c)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	err = waitFor("evaluate", func(c map[storage.JobState]int) bool {
		// Every evaluate job done (completed counts them), one step job
		// per journey left waiting.
		evaluated := n
		if returning {
			evaluated = 2 * n // the customers' records are evaluated too
		}
		return c[storage.JobCompleted] >= evaluated && c[storage.JobScheduled] >= n && c[storage.JobRunning] == 0 && c[storage.JobRetryable] == 0
	})
	cancel()
	<-done
	a.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "phase 1: %d journeys waiting (%.1f s)\n", n, time.Since(start).Seconds())

	// Phase 2: real clock; every step is due.
	a, err = app.Open(context.Background(), cfg, app.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	if memProfile != "" {
		// Sampling starts here (it was off through phase 1).
		runtime.MemProfileRate = 64 << 10
		runtime.GC()
		defer func() {
			if f, err := os.Create(memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	t0, cpu0 := time.Now(), cpuTime()
	go func() { done <- a.Serve(ctx, "127.0.0.1:0") }()
	// Count sends by the log sender's outbox lines, reading only what
	// was appended since the last look: polling the store's outbox would
	// decode every send each time and slow the thing measured.
	outbox := filepath.Join(cfg.DataDir, logsender.OutboxFile)
	var sent int
	var off int64
	// One buffer for every look: this loop runs inside the measured
	// process, and reading each look's bytes into a new slice made it
	// allocate about a tenth of what the scheduler did.
	buf := make([]byte, 1<<20)
	end := time.Now().Add(timeout)
	for sent < n && time.Now().Before(end) {
		// Polled often: the run lasts a few seconds, and the poll
		// interval bounds how exactly its end is seen.
		time.Sleep(5 * time.Millisecond)
		f, err := os.Open(outbox)
		if err != nil {
			continue // nothing sent yet
		}
		for {
			k, err := f.ReadAt(buf, off)
			i := bytes.LastIndexByte(buf[:k], '\n')
			if i >= 0 {
				sent += bytes.Count(buf[:i+1], []byte{'\n'})
				off += int64(i + 1)
			}
			if err == io.EOF || (err == nil && i < 0) {
				break // no whole line left to read yet
			}
			if err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	cs := a.Store.CommitStats()
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	cancel()
	<-done
	c, _ := a.Store.CountJobs(context.Background())
	fmt.Fprintf(os.Stderr, "phase 2: jobs %v\n", c)
	if cs.Commits > 0 {
		// Why the rate is what it is: every step's writes go through
		// the store's single group commit.
		fmt.Fprintf(os.Stderr, "phase 2: group commit: %d commits, %.1f writes, %.0f pages, %.2f ms each; %.1f commits and %.0f pages per step\n",
			cs.Commits, float64(cs.Writes)/float64(cs.Commits), float64(cs.Pages)/float64(cs.Commits), 1000*cs.Seconds/float64(cs.Commits),
			float64(cs.Commits)/float64(max(sent, 1)), float64(cs.Pages)/float64(max(sent, 1)))
		fmt.Fprintf(os.Stderr, "phase 2: writer: %.0f%% running writes, %.0f%% spilling, %.0f%% writing and syncing pages; %.0f µs per step in all\n",
			100*(cs.Seconds-cs.SpillSeconds-cs.WriteSeconds)/cs.Seconds, 100*cs.SpillSeconds/cs.Seconds, 100*cs.WriteSeconds/cs.Seconds,
			1e6*cs.Seconds/float64(max(sent, 1)))
	}
	// CPU per step moves far less with the machine's mood than steps
	// per second do: on two cores it bounds the rate at 2 s / cpu.
	fmt.Fprintf(os.Stderr, "phase 2: process CPU: %.0f µs per step (%.0f%% of 2 cores)\n",
		1e6*cpu.Seconds()/float64(max(sent, 1)), 100*cpu.Seconds()/elapsed.Seconds()/2)
	fmt.Printf("scheduler dispatch: %d of %d due steps sent through the log sender in %.2f s = %.0f steps/s\n",
		sent, n, elapsed.Seconds(), float64(sent)/elapsed.Seconds())
	return nil
}

// cpuTime is the user and system CPU this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
