package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// RunConfig says how hard and how long to drive a server.
type RunConfig struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Concurrency is the number of workers (closed loop) or the most
	// requests in flight (open loop). Default 64.
	Concurrency int
	// Rate, when positive, offers this many requests per second on a fixed
	// schedule (open loop) and measures latency from each request's
	// scheduled time, so a stalled server cannot hide its queueing delay
	// (coordinated omission). Zero runs a closed loop.
	Rate float64
	// N bounds the number of requests; Duration bounds the time. At least
	// one must be set; the run stops at whichever comes first.
	N        int
	Duration time.Duration
	// Warmup requests are sent first and not measured.
	Warmup int
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
}

// Report is what a run measured.
type Report struct {
	Kind        string         `json:"kind"`
	Target      string         `json:"target"`
	Mode        string         `json:"mode"`
	Concurrency int            `json:"concurrency"`
	OfferedRate float64        `json:"offered_rps,omitempty"`
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	Errors      map[string]int `json:"errors,omitempty"`
	Dropped     int            `json:"dropped,omitempty"` // open loop: no free slot at the scheduled time
	Seconds     float64        `json:"seconds"`
	Throughput  float64        `json:"throughput_rps"` // 200s per second
	BodyBytes   int            `json:"body_bytes"`     // mean request body size
	P50ms       float64        `json:"p50_ms"`
	P90ms       float64        `json:"p90_ms"`
	P99ms       float64        `json:"p99_ms"`
	Maxms       float64        `json:"max_ms"`
}

// Text is the report as one human-readable line.
func (r Report) Text() string {
	var errs []string
	for k, v := range r.Errors {
		errs = append(errs, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(errs)
	e := "none"
	if len(errs) > 0 {
		e = strings.Join(errs, " ")
	}
	mode := fmt.Sprintf("c=%d", r.Concurrency)
	if r.OfferedRate > 0 {
		mode = fmt.Sprintf("rate=%.0f/s", r.OfferedRate)
	}
	return fmt.Sprintf("%-8s %-16s %-12s %6d req %6d ok %8.1f ok/s  p50 %6.2f ms  p90 %6.2f ms  p99 %7.2f ms  max %7.2f ms  body %d B  errors: %s dropped: %d",
		r.Target, r.Kind, mode, r.Requests, r.OK, r.Throughput, r.P50ms, r.P90ms, r.P99ms, r.Maxms, r.BodyBytes, e, r.Dropped)
}

type result struct {
	latency time.Duration
	status  string // "200", "503", "transport"
	bytes   int
}

// Run drives the server with requests from g and reports what it saw.
func Run(ctx context.Context, g *Generator, rc RunConfig) (Report, error) {
	if rc.Concurrency <= 0 {
		rc.Concurrency = 64
	}
	if rc.Timeout <= 0 {
		rc.Timeout = 10 * time.Second
	}
	if rc.N <= 0 && rc.Duration <= 0 {
		return Report{}, fmt.Errorf("load: set a request count or a duration")
	}
	if rc.N <= 0 {
		rc.N = 1 << 30
	}
	if rc.Duration <= 0 {
		rc.Duration = 24 * time.Hour
	}
	client := &http.Client{
		Timeout: rc.Timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        rc.Concurrency * 2,
			MaxIdleConnsPerHost: rc.Concurrency * 2,
			MaxConnsPerHost:     rc.Concurrency,
			DisableCompression:  true,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	defer client.CloseIdleConnections()
	base := strings.TrimRight(rc.URL, "/")
	do := func(ctx context.Context, scheduled time.Time) result {
		req, err := g.Next()
		if err != nil {
			return result{status: "build", latency: time.Since(scheduled)}
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+req.Path, bytes.NewReader(req.Body))
		if err != nil {
			return result{status: "build", latency: time.Since(scheduled)}
		}
		hr.Header = req.Header
		resp, err := client.Do(hr)
		if err != nil {
			return result{status: "transport", latency: time.Since(scheduled), bytes: len(req.Body)}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return result{status: fmt.Sprint(resp.StatusCode), latency: time.Since(scheduled), bytes: len(req.Body)}
	}
	// Warm up connections and the server's caches, unmeasured.
	if rc.Warmup > 0 {
		var wg sync.WaitGroup
		sem := make(chan struct{}, rc.Concurrency)
		for range rc.Warmup {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				do(ctx, time.Now())
				<-sem
			}()
		}
		wg.Wait()
	}

	ctx, cancel := context.WithTimeout(ctx, rc.Duration+rc.Timeout)
	defer cancel()
	deadline := time.Now().Add(rc.Duration)
	var (
		mu      sync.Mutex
		results = make([]result, 0, min(rc.N, 1<<20))
		dropped int
	)
	record := func(r result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	start := time.Now()
	if rc.Rate > 0 {
		interval := time.Duration(float64(time.Second) / rc.Rate)
		sem := make(chan struct{}, rc.Concurrency)
		var wg sync.WaitGroup
	loop:
		for i := 0; i < rc.N; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.After(deadline) {
				break
			}
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break loop
				}
			}
			select {
			case sem <- struct{}{}:
			default:
				dropped++
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				record(do(ctx, at))
				<-sem
			}()
		}
		wg.Wait()
	} else {
		var wg sync.WaitGroup
		var next int
		var nmu sync.Mutex
		take := func() bool {
			nmu.Lock()
			defer nmu.Unlock()
			if next >= rc.N || time.Now().After(deadline) {
				return false
			}
			next++
			return true
		}
		for range rc.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for take() {
					if ctx.Err() != nil {
						return
					}
					record(do(ctx, time.Now()))
				}
			}()
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	rep := summarize(g.cfg.Kind, rc, results, elapsed)
	rep.Dropped = dropped
	return rep, nil
}

func summarize(kind string, rc RunConfig, results []result, elapsed time.Duration) Report {
	rep := Report{Kind: kind, Mode: "closed", Concurrency: rc.Concurrency, OfferedRate: rc.Rate, Requests: len(results), Seconds: elapsed.Seconds()}
	if rc.Rate > 0 {
		rep.Mode = "open"
	}
	lat := make([]time.Duration, 0, len(results))
	total := 0
	for _, r := range results {
		total += r.bytes
		if r.status == "200" {
			rep.OK++
			lat = append(lat, r.latency)
			continue
		}
		if rep.Errors == nil {
			rep.Errors = map[string]int{}
		}
		rep.Errors[r.status]++
	}
	if len(results) > 0 {
		rep.BodyBytes = total / len(results)
	}
	if elapsed > 0 {
		rep.Throughput = float64(rep.OK) / elapsed.Seconds()
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(float64(len(lat)-1) * p)
		return float64(lat[i].Microseconds()) / 1000
	}
	rep.P50ms, rep.P90ms, rep.P99ms, rep.Maxms = q(0.5), q(0.9), q(0.99), q(1)
	return rep
}

// JSON is the report as indented JSON.
func (r Report) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
}
