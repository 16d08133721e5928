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
	return m
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
