package server

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nudge-email/nudge/storage"
)

// metrics are the server's Prometheus collectors, on the server's own
// registry (no global state).
type metrics struct {
	onWebhook func(source, outcome string, at time.Time)
	webhooks  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	records   prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, store storage.Store) *metrics {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nudge_webhooks_total", Help: "Webhook deliveries by source and outcome.",
		}, []string{"source", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nudge_ingest_seconds", Help: "Time from request to answer for webhook deliveries.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"source"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nudge_records_ingested_total", Help: "New records stored from webhooks.",
		}),
	}
	reg.MustRegister(m.webhooks, m.latency, m.records)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nudge_store_bytes", Help: "Size of the store file.",
	}, cachedStoreBytes(store)))
	if cs, ok := store.(commitStatser); ok {
		reg.MustRegister(newCommitCollector(cs))
	}
	return m
}

// commitStatser is a store with a group commit (storage.DB).
type commitStatser interface {
	CommitStats() storage.CommitStats
}

// commitCollector exports the store's group-commit totals, read at each
// scrape (atomic counters: no cost on the write path beyond counting).
type commitCollector struct {
	store                  commitStatser
	commits, writes, pages *prometheus.Desc
	seconds                *prometheus.Desc
	holds, holdSeconds     *prometheus.Desc
	spill, write           *prometheus.Desc
}

func newCommitCollector(store commitStatser) *commitCollector {
	return &commitCollector{
		store: store,
		commits: prometheus.NewDesc("nudge_store_commits_total",
			"Write transactions committed by the store's group commit (each with two fdatasyncs).", nil, nil),
		writes: prometheus.NewDesc("nudge_store_commit_writes_total",
			"Writes (webhook appends, job claims and outcomes, sends, scores) carried by those commits.", nil, nil),
		pages: prometheus.NewDesc("nudge_store_commit_pages_total",
			"Pages those commits wrote.", nil, nil),
		seconds: prometheus.NewDesc("nudge_store_commit_seconds",
			"Duration of each group commit, from running its writes to the end of its fsyncs; a webhook waits for about one and a half.", nil, nil),
		holds: prometheus.NewDesc("nudge_store_commit_holds_total",
			"Groups the commit held open for more webhooks while commits ran back to back (storage.max_batch_delay).", nil, nil),
		holdSeconds: prometheus.NewDesc("nudge_store_commit_hold_seconds_total",
			"Time spent holding those groups open.", nil, nil),
		spill: prometheus.NewDesc("nudge_store_commit_spill_seconds_total",
			"Part of the commits' duration spent turning changed nodes into pages.", nil, nil),
		write: prometheus.NewDesc("nudge_store_commit_write_seconds_total",
			"Part of the commits' duration spent writing pages and fsyncing them: near the whole, the disk bounds the store; far below, the writes' CPU does.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *commitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.commits
	ch <- c.writes
	ch <- c.pages
	ch <- c.seconds
	ch <- c.holds
	ch <- c.holdSeconds
	ch <- c.spill
	ch <- c.write
}

// Collect implements prometheus.Collector.
func (c *commitCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.store.CommitStats()
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(s.Commits))
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(s.Writes))
	ch <- prometheus.MustNewConstMetric(c.pages, prometheus.CounterValue, float64(s.Pages))
	buckets := map[float64]uint64{}
	var cum uint64
	for i, le := range storage.CommitBounds() {
		if i < len(s.Buckets) {
			cum += s.Buckets[i]
		}
		buckets[le] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.seconds, s.Commits, s.Seconds, buckets)
	ch <- prometheus.MustNewConstMetric(c.holds, prometheus.CounterValue, float64(s.Holds))
	ch <- prometheus.MustNewConstMetric(c.holdSeconds, prometheus.CounterValue, s.HoldSeconds)
	ch <- prometheus.MustNewConstMetric(c.spill, prometheus.CounterValue, s.SpillSeconds)
	ch <- prometheus.MustNewConstMetric(c.write, prometheus.CounterValue, s.WriteSeconds)
}

// cachedStoreBytes reads the store size at most once a minute. A store
// kept in one file (storage.DB) is sized with a stat of it; Stats walks
// every bucket (0.4-0.8 s on 1M records), too slow for each scrape.
func cachedStoreBytes(store storage.Store) func() float64 {
	var mu sync.Mutex
	var at time.Time
	var v float64
	file, _ := store.(interface{ Path() string })
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > time.Minute {
			if file != nil {
				if fi, err := os.Stat(file.Path()); err == nil {
					v = float64(fi.Size())
				}
			} else if st, err := store.Stats(context.Background()); err == nil {
				v = float64(st.FileBytes)
			}
			at = time.Now()
		}
		return v
	}
}

func (m *metrics) webhook(source, outcome string, start time.Time) {
	m.webhooks.WithLabelValues(source, outcome).Inc()
	if m.onWebhook != nil {
		m.onWebhook(source, outcome, time.Now())
	}
	m.latency.WithLabelValues(source).Observe(time.Since(start).Seconds())
}
