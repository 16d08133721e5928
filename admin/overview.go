package admin

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// Overview windows.
const (
	eventWindowMinutes = 24 * 60
	sendDays           = 30
	// maxChartSources keeps the events chart legible; smaller sources are
	// summed into "other".
	maxChartSources = 7
)

// funnelStages are the overview funnel's columns, in order.
func funnelStages() []string {
	return []string{"started", "sent", "delivered", "opened", "clicked", "converted"}
}

// ruleRow is one rule's line on the overview and rules pages.
type ruleRow struct {
	ID   string
	Info *RuleInfo // nil for a rule that has journeys but is no longer loaded
	// Journey counts. Started excludes held-out journeys: those never
	// send, so they belong to the lift comparison, not the funnel.
	Started, HeldOut                                     int
	Active, Completed, Exited, Suppressed                int
	LastFired                                            time.Time
	Sent, Delivered, Opened, Clicked                     int
	Converted                                            int
	Revenue                                              int64
	HasConversions                                       bool // RuleStatsFunc answered
	Dead, Pending                                        int
	Stages                                               []funnelStage
	Lift                                                 Lift
	LiftAvailable                                        bool
	sentJourneys, heldJourneys, heldConvert, sentConvert int
}

// funnelStage is one bar of a rule's funnel.
type funnelStage struct {
	Name  string
	Value int
	Known bool
	// Pct is Value as a share of Started; Width the bar's width in the
	// funnel SVG.
	Pct   float64
	Width float64
}

// sourceTotal is one source's events over the window.
type sourceTotal struct {
	Source string
	Color  string
	Total  int
	Peak   int
}

// overview is everything the overview page shows, computed together and
// cached.
type overview struct {
	ComputedAt   time.Time
	Took         time.Duration
	Stats        storage.Stats
	Events       lineChart
	Sources      []sourceTotal
	EventsTotal  int
	Sends        barChart
	SendsTotal   int
	Rules        []ruleRow
	RulesErr     string
	RuleStatsErr string
	Outbox       map[string]int // send status → count
	Currency     string
}

// overviewCache holds the last overview. Readers get a fresh copy when
// one is younger than the TTL, the stale copy while another request
// recomputes (so only one scan of a million records runs at a time and no
// page waits on it once warm), or wait for the first computation.
type overviewCache struct {
	mu       sync.Mutex
	data     *overview
	err      error
	inflight chan struct{}
}

func (c *overviewCache) get(ctx context.Context, now time.Time, ttl time.Duration, compute func(context.Context) (*overview, error)) (*overview, error) {
	c.mu.Lock()
	if c.data != nil && now.Sub(c.data.ComputedAt) < ttl {
		d := c.data
		c.mu.Unlock()
		return d, nil
	}
	if ch := c.inflight; ch != nil {
		if d := c.data; d != nil {
			c.mu.Unlock()
			return d, nil
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.data, c.err
	}
	ch := make(chan struct{})
	c.inflight = ch
	c.mu.Unlock()
	// One client giving up must not fail the computation others wait on.
	d, err := compute(context.WithoutCancel(ctx))
	c.mu.Lock()
	if err == nil {
		c.data = d
	}
	c.err = err
	c.inflight = nil
	c.mu.Unlock()
	close(ch)
	return d, err
}

// invalidate makes the next reader recompute, after an admin action
// changed what the overview counts.
func (c *overviewCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data != nil {
		stale := *c.data
		stale.ComputedAt = time.Time{}
		c.data = &stale
	}
}

func (a *Admin) overview(ctx context.Context) (*overview, error) {
	return a.cache.get(ctx, a.opts.Clock.Now(), a.opts.CacheTTL, a.computeOverview)
}

func (a *Admin) computeOverview(ctx context.Context) (*overview, error) {
	start := time.Now()
	now := a.opts.Clock.Now().UTC()
	o := &overview{ComputedAt: a.opts.Clock.Now(), Currency: a.opts.Currency, Outbox: map[string]int{}}
	var err error
	if o.Stats, err = a.opts.Store.Stats(ctx); err != nil {
		return nil, fmt.Errorf("admin: stats: %w", err)
	}
	if err := a.eventSeries(ctx, now, o); err != nil {
		return nil, err
	}
	sends, err := a.opts.Store.ListSends(ctx, "", 0)
	if err != nil {
		return nil, fmt.Errorf("admin: sends: %w", err)
	}
	for _, s := range sends {
		o.Outbox[s.Status]++
	}
	o.Sends, o.SendsTotal = sendsPerDay(sends, now)
	if err := a.ruleRows(ctx, sends, o); err != nil {
		return nil, err
	}
	o.Took = time.Since(start)
	return o, nil
}

// eventSeries counts records per source and minute over the 24 h ending
// with the current minute.
func (a *Admin) eventSeries(ctx context.Context, now time.Time, o *overview) error {
	end := now.Truncate(time.Minute).Add(time.Minute)
	since := end.Add(-eventWindowMinutes * time.Minute)
	per := map[string][]int{}
	err := a.opts.Store.ScanRecords(ctx, since, end, func(r behavior.Record) error {
		src := r.Source
		if src == "" {
			src = "unknown"
		}
		s := per[src]
		if s == nil {
			s = make([]int, eventWindowMinutes)
			per[src] = s
		}
		if i := int(r.At.Sub(since) / time.Minute); i >= 0 && i < eventWindowMinutes {
			s[i]++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin: events per minute: %w", err)
	}
	type src struct {
		name  string
		total int
		s     []int
	}
	var all []src
	for name, s := range per {
		t := 0
		for _, n := range s {
			t += n
		}
		all = append(all, src{name, t, s})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].total != all[j].total {
			return all[i].total > all[j].total
		}
		return all[i].name < all[j].name
	})
	if len(all) > maxChartSources {
		other := src{name: "other", s: make([]int, eventWindowMinutes)}
		for _, x := range all[maxChartSources-1:] {
			other.total += x.total
			for i, n := range x.s {
				other.s[i] += n
			}
		}
		all = append(all[:maxChartSources-1], other)
	}
	var series []series
	for i, x := range all {
		peak := 0
		for _, n := range x.s {
			peak = max(peak, n)
		}
		color := palette(i)
		o.Sources = append(o.Sources, sourceTotal{Source: x.name, Color: color, Total: x.total, Peak: peak})
		o.EventsTotal += x.total
		series = append(series, seriesOf(x.name, color, x.s))
	}
	o.Events = newLineChart(series, since, time.Minute, 4*time.Hour)
	return nil
}

// sendsPerDay stacks sent, held and dead sends per UTC day over the last
// sendDays days. A send counts on the day it went out (sent) or was
// created (held, dead).
func sendsPerDay(sends []storage.Send, now time.Time) (barChart, int) {
	first := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -(sendDays - 1))
	kinds := []string{storage.SendSent, storage.SendHeld, storage.SendDead}
	counts := make([][]int, len(kinds))
	for i := range counts {
		counts[i] = make([]int, sendDays)
	}
	total := 0
	for _, s := range sends {
		k := -1
		for i, name := range kinds {
			if s.Status == name {
				k = i
			}
		}
		if k < 0 {
			continue
		}
		at := s.CreatedAt
		if s.Status == storage.SendSent && !s.SentAt.IsZero() {
			at = s.SentAt
		}
		d := int(at.UTC().Sub(first) / (24 * time.Hour))
		if at.Before(first) || d >= sendDays {
			continue
		}
		counts[k][d]++
		total++
	}
	labels := make([]string, sendDays)
	for i := range labels {
		labels[i] = first.AddDate(0, 0, i).Format("Jan 2")
	}
	return newBarChart(labels, []string{"sent", "held out", "dead"}, counts), total
}

// ruleRows joins loaded rules, journey counts and outbox counts per rule.
func (a *Admin) ruleRows(ctx context.Context, sends []storage.Send, o *overview) error {
	rows := map[string]*ruleRow{}
	get := func(id string) *ruleRow {
		r := rows[id]
		if r == nil {
			r = &ruleRow{ID: id}
			rows[id] = r
		}
		return r
	}
	if a.opts.RulesFunc != nil {
		infos, err := a.opts.RulesFunc(ctx)
		if err != nil {
			o.RulesErr = err.Error()
		}
		for i := range infos {
			if infos[i].ID == "" {
				continue // a file that failed to parse: the rules page lists it
			}
			get(infos[i].ID).Info = &infos[i]
		}
	}
	holdout := map[string]bool{}
	err := a.opts.Store.ScanJourneys(ctx, "", func(j storage.Journey) error {
		r := get(j.Rule)
		holdout[j.ID] = j.Holdout
		if j.Holdout {
			r.HeldOut++
		} else {
			r.Started++
		}
		switch j.Status {
		case storage.JourneyWaiting:
			r.Active++
		case storage.JourneyCompleted:
			r.Completed++
		case storage.JourneyExited:
			r.Exited++
		case storage.JourneySuppressed:
			r.Suppressed++
		}
		if j.StartedAt.After(r.LastFired) {
			r.LastFired = j.StartedAt
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin: journeys: %w", err)
	}
	// Lift groups are journeys, not sends: a journey joins the sent arm
	// once one of its emails went out, the held-out arm once one of its
	// steps was held.
	sentJ := map[string]bool{}
	heldJ := map[string]bool{}
	for _, s := range sends {
		r := get(s.Rule)
		switch s.Status {
		case storage.SendSent, storage.SendUnknown:
			if !holdout[s.JourneyID] && !sentJ[s.JourneyID] {
				sentJ[s.JourneyID] = true
				r.sentJourneys++
			}
		case storage.SendHeld:
			if !heldJ[s.JourneyID] {
				heldJ[s.JourneyID] = true
				r.heldJourneys++
			}
		case storage.SendDead:
			r.Dead++
		case storage.SendPending, storage.SendRetrying, storage.SendSending:
			r.Pending++
		}
		if a.opts.RuleStatsFunc == nil && (s.Status == storage.SendSent || s.Status == storage.SendUnknown) {
			// Without the sender's stats, count the funnel from the
			// outbox itself; only conversions need the sender.
			r.Sent++
			if s.Engagement["delivered"] > 0 {
				r.Delivered++
			}
			if s.Engagement["opened"] > 0 {
				r.Opened++
			}
			if s.Engagement["clicked"] > 0 {
				r.Clicked++
			}
		}
	}
	if a.opts.RuleStatsFunc != nil {
		stats, err := a.opts.RuleStatsFunc(ctx)
		if err != nil {
			o.RuleStatsErr = err.Error()
		}
		for id, st := range stats {
			r := get(id)
			r.Sent, r.Delivered, r.Opened, r.Clicked = st.Sent, st.Delivered, st.Opened, st.Clicked
			r.Converted, r.Revenue, r.HasConversions = st.Converted, st.Revenue, true
			r.heldConvert = st.HeldConverted
			// Lift compares like with like: any order after the message in
			// both arms, not click-attributed orders against any order.
			r.sentConvert = st.SentConverted
			if r.sentConvert == 0 {
				r.sentConvert = st.Converted
			}
		}
		if err == nil {
			for _, r := range rows {
				r.HasConversions = true
			}
		}
	}
	for _, r := range rows {
		r.Stages = stagesOf(r)
		if r.HasConversions {
			r.LiftAvailable = true
			r.Lift = computeLift(r.sentJourneys, r.sentConvert, r.heldJourneys, r.heldConvert)
		}
		o.Rules = append(o.Rules, *r)
	}
	sort.Slice(o.Rules, func(i, j int) bool { return o.Rules[i].ID < o.Rules[j].ID })
	return nil
}

// funnelWidth is the width of the funnel SVG's bar area.
const funnelWidth = 240

func stagesOf(r *ruleRow) []funnelStage {
	vals := []int{r.Started, r.Sent, r.Delivered, r.Opened, r.Clicked, r.Converted}
	out := make([]funnelStage, len(vals))
	base := max(r.Started, r.Sent, 1)
	for i, name := range funnelStages() {
		st := funnelStage{Name: name, Value: vals[i], Known: name != "converted" || r.HasConversions}
		st.Pct = float64(vals[i]) / float64(base)
		st.Width = min(1, st.Pct) * funnelWidth
		out[i] = st
	}
	return out
}

func (a *Admin) overviewPage(c *gin.Context) {
	o, err := a.overview(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	a.render(c, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Data: o})
}
