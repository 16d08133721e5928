package admin

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHealthCollector(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 12, 30, 0, 0, time.UTC)
	type obs struct {
		source, outcome string
		ago             time.Duration
	}
	tests := []struct {
		name     string
		obs      []obs
		source   string
		counts   map[string]int
		accepted int
		rejected int
		last     time.Duration // ago; -1 = never
		hourly   map[int]int   // index → count
	}{
		{
			name: "counts by outcome within 24 h",
			obs: []obs{
				{"shopify", "stored", time.Minute}, {"shopify", "stored", 2 * time.Hour}, {"shopify", "duplicate", 3 * time.Minute},
				{"shopify", "bad_signature", 5 * time.Minute}, {"shopify", "ignored", 10 * time.Minute}, {"shopify", "stale", 20 * time.Hour},
			},
			source:   "shopify",
			counts:   map[string]int{"stored": 2, "duplicate": 1, "bad_signature": 1, "ignored": 1, "stale": 1},
			accepted: 3, rejected: 1, last: time.Minute,
			hourly: map[int]int{23: 4, 21: 1, 3: 1},
		},
		{
			name:   "older than 24 h is forgotten",
			obs:    []obs{{"stripe", "stored", 24*time.Hour + time.Minute}, {"stripe", "stored", 25 * time.Hour}, {"stripe", "stored", 23 * time.Hour}},
			source: "stripe",
			counts: map[string]int{"stored": 1}, accepted: 1, last: 23 * time.Hour,
		},
		{
			name:   "a stale slot is reset when reused",
			obs:    []obs{{"web", "stored", 24 * time.Hour}, {"web", "malformed", 0}},
			source: "web",
			counts: map[string]int{"malformed": 1}, rejected: 1, last: 0,
		},
		{
			name:   "unknown outcomes are other",
			obs:    []obs{{"mailgun", "exploded", time.Minute}},
			source: "mailgun",
			counts: map[string]int{"other": 1}, rejected: 1, last: time.Minute,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHealth()
			for _, o := range tc.obs {
				h.Observe(o.source, o.outcome, now.Add(-o.ago))
			}
			snap := h.Snapshot(now)
			var got *SourceHealth
			for i := range snap {
				if snap[i].Source == tc.source {
					got = &snap[i]
				}
			}
			require.NotNil(t, got)
			require.Equal(t, tc.counts, got.Counts)
			require.Equal(t, tc.accepted, got.Accepted())
			require.Equal(t, tc.rejected, got.Rejected())
			require.Equal(t, now.Add(-tc.last), got.Last)
			require.Len(t, got.Hourly, 24)
			for i, n := range tc.hourly {
				require.Equal(t, n, got.Hourly[i], "hour %d", i)
			}
		})
	}
}

func TestHealthBoundsSources(t *testing.T) {
	t.Parallel()
	h := NewHealth()
	now := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 4*maxHealthSources; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h.Observe(fmt.Sprintf("src-%d", i), OutcomeStored, now)
		}(i)
	}
	wg.Wait()
	snap := h.Snapshot(now)
	require.LessOrEqual(t, len(snap), maxHealthSources+1)
	total := 0
	for _, s := range snap {
		total += s.Total
	}
	require.Equal(t, 4*maxHealthSources, total, "nothing is lost, only folded into other")
}
