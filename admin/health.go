package admin

import (
	"sort"
	"sync"
	"time"
)

// Webhook outcomes as the server reports them. Anything else is counted as
// OutcomeOther, so a new outcome never grows memory.
const (
	OutcomeStored       = "stored"
	OutcomeDuplicate    = "duplicate"
	OutcomeIgnored      = "ignored"
	OutcomePing         = "ping"
	OutcomeBadSignature = "bad_signature"
	OutcomeStale        = "stale"
	OutcomeMalformed    = "malformed"
	OutcomeTooLarge     = "too_large"
	OutcomeError        = "error"
	OutcomeOther        = "other"
)

// numOutcomes is the number of slots in a minute bucket.
const numOutcomes = 10

// outcomeList fixes the slot of each outcome in a minute bucket.
func outcomeList() [numOutcomes]string {
	return [numOutcomes]string{
		OutcomeStored, OutcomeDuplicate, OutcomeIgnored, OutcomePing, OutcomeBadSignature,
		OutcomeStale, OutcomeMalformed, OutcomeTooLarge, OutcomeError, OutcomeOther,
	}
}

func outcomeSlot(o string) int {
	for i, s := range outcomeList() {
		if s == o {
			return i
		}
	}
	return numOutcomes - 1
}

const (
	// healthMinutes is the window the collector keeps: 24 h of minutes.
	healthMinutes = 24 * 60
	// maxHealthSources bounds the sources tracked; later ones are folded
	// into "other" (the server only reports configured sources and
	// "unknown", so this is a guard, not a limit anyone should reach).
	maxHealthSources = 64
)

type minuteBucket struct {
	minute int64 // unix minute this bucket holds; stale buckets are reset on write
	counts [numOutcomes]uint32
}

type sourceRing struct {
	buckets     [healthMinutes]minuteBucket
	last        time.Time
	lastOutcome string
}

// Health counts webhook outcomes per source and minute over the last 24 h
// in a fixed ring per source, so memory stays bounded (about 60 KB per
// source) however many webhooks arrive. It is safe for concurrent use.
type Health struct {
	mu      sync.Mutex
	sources map[string]*sourceRing
}

// NewHealth returns an empty collector.
func NewHealth() *Health { return &Health{sources: map[string]*sourceRing{}} }

// Observe counts one webhook outcome; wire it to server.Options.OnWebhook.
func (h *Health) Observe(source, outcome string, at time.Time) {
	minute := at.Unix() / 60
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.sources[source]
	if r == nil {
		if len(h.sources) >= maxHealthSources {
			source = OutcomeOther
			r = h.sources[source]
		}
		if r == nil {
			r = &sourceRing{}
			h.sources[source] = r
		}
	}
	b := &r.buckets[minute%healthMinutes]
	if b.minute != minute {
		if minute < b.minute {
			return // older than the window this slot now holds
		}
		*b = minuteBucket{minute: minute}
	}
	b.counts[outcomeSlot(outcome)]++
	if at.After(r.last) {
		r.last, r.lastOutcome = at, outcome
	}
}

// SourceHealth is one source's last 24 h.
type SourceHealth struct {
	// Source is the connector name.
	Source string
	// Last is when the latest delivery arrived (zero if nothing was
	// received since start) and LastOutcome how it ended.
	Last        time.Time
	LastOutcome string
	// Counts are per outcome over the window.
	Counts map[string]int
	// Hourly are deliveries per hour, oldest first (24 entries), for a
	// sparkline.
	Hourly []int
	// Total counts every delivery in the window.
	Total int
}

// Accepted counts deliveries answered 200 with something stored or
// knowingly skipped (stored, ignored topics, pings).
func (s SourceHealth) Accepted() int {
	return s.Counts[OutcomeStored] + s.Counts[OutcomeIgnored] + s.Counts[OutcomePing]
}

// Rejected counts deliveries refused for anything but a bad signature.
func (s SourceHealth) Rejected() int {
	return s.Counts[OutcomeStale] + s.Counts[OutcomeMalformed] + s.Counts[OutcomeTooLarge] + s.Counts[OutcomeError] + s.Counts[OutcomeOther]
}

// Snapshot returns every observed source's counts over the 24 h ending at
// now, sorted by source.
func (h *Health) Snapshot(now time.Time) []SourceHealth {
	nowMin := now.Unix() / 60
	names := outcomeList()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]SourceHealth, 0, len(h.sources))
	for name, r := range h.sources {
		s := SourceHealth{Source: name, Last: r.last, LastOutcome: r.lastOutcome, Counts: map[string]int{}, Hourly: make([]int, 24)}
		for i := range r.buckets {
			b := &r.buckets[i]
			age := nowMin - b.minute
			if age < 0 || age >= healthMinutes {
				continue
			}
			for slot, n := range b.counts {
				if n == 0 {
					continue
				}
				s.Counts[names[slot]] += int(n)
				s.Hourly[23-int(age/60)] += int(n)
				s.Total += int(n)
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}
