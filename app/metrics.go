package app

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nudge-email/nudge/journey"
	"github.com/nudge-email/nudge/storage"
)

// stateCollector exports counts that live in the store — journeys by
// status, sends by provider and status, jobs by state — computed at scrape
// time from the store and cached briefly, so scrapes stay cheap and the
// numbers survive restarts (counters kept in memory would not).
type stateCollector struct {
	a        *App
	journeys *prometheus.Desc
	sends    *prometheus.Desc
	jobs     *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

func newStateCollector(a *App) *stateCollector {
	return &stateCollector{
		a:        a,
		journeys: prometheus.NewDesc("nudge_journeys", "Journeys by rule and status.", []string{"rule", "status"}, nil),
		sends:    prometheus.NewDesc("nudge_sends", "Outbox entries by provider and status.", []string{"provider", "status"}, nil),
		jobs:     prometheus.NewDesc("nudge_jobs", "Durable jobs by state (completed and cancelled are running totals).", []string{"state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.journeys
	ch <- c.sends
	ch <- c.jobs
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > 15*time.Second {
		c.metrics = c.gather(context.Background())
		c.at = time.Now()
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *stateCollector) gather(ctx context.Context) []prometheus.Metric {
	var out []prometheus.Metric
	if counts, err := journey.Counts(ctx, c.a.Store, c.a.parts.engine.Rules()); err == nil {
		for _, rc := range counts {
			for status, n := range map[string]int{
				storage.JourneyWaiting: rc.Active, storage.JourneyCompleted: rc.Completed, storage.JourneyExited: rc.Exited,
				storage.JourneySuppressed: rc.Suppressed, storage.JourneyHeldOut: rc.HeldOut,
			} {
				out = append(out, prometheus.MustNewConstMetric(c.journeys, prometheus.GaugeValue, float64(n), rc.Rule, status))
			}
		}
	}
	if sends, err := c.a.Store.ListSends(ctx, "", 0); err == nil {
		type key struct{ provider, status string }
		by := map[key]int{}
		for _, s := range sends {
			by[key{s.Provider, s.Status}]++
		}
		for k, n := range by {
			out = append(out, prometheus.MustNewConstMetric(c.sends, prometheus.GaugeValue, float64(n), k.provider, k.status))
		}
	}
	if jobs, err := c.a.Store.CountJobs(ctx); err == nil {
		for state, n := range jobs {
			out = append(out, prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(n), string(state)))
		}
	}
	return out
}

// schedulerMetrics observe every finished job: how late it started (the
// scheduler's lag behind due time) and how it ended.
type schedulerMetrics struct {
	lag  *prometheus.HistogramVec
	done *prometheus.CounterVec
}

func newSchedulerMetrics(reg *prometheus.Registry) *schedulerMetrics {
	m := &schedulerMetrics{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nudge_scheduler_lag_seconds", Help: "Delay between a job's due time and its start, by job kind.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60, 300},
		}, []string{"kind"}),
		done: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nudge_scheduler_jobs_total", Help: "Finished job runs by kind and resulting state.",
		}, []string{"kind", "state"}),
	}
	reg.MustRegister(m.lag, m.done)
	return m
}

func (m *schedulerMetrics) observe(j storage.Job, state storage.JobState, lag time.Duration) {
	if lag < 0 {
		lag = 0
	}
	m.lag.WithLabelValues(j.Kind).Observe(lag.Seconds())
	m.done.WithLabelValues(j.Kind, string(state)).Inc()
}
