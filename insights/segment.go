package insights

import (
	"sort"
	"time"
)

// Lifecycle segments, in the order a customer usually moves through them.
const (
	SegmentProspect = "prospect" // known, never ordered
	SegmentNew      = "new"      // one order, recently
	SegmentActive   = "active"   // ordering, not (yet) among the best
	SegmentLoyal    = "loyal"    // frequent and high-spending, still alive
	SegmentAtRisk   = "at_risk"  // slipping: overdue for their usual rhythm
	SegmentLapsed   = "lapsed"   // very likely gone
)

// Segments lists every segment, for reports.
func Segments() []string {
	return []string{SegmentProspect, SegmentNew, SegmentActive, SegmentLoyal, SegmentAtRisk, SegmentLapsed}
}

// SegmentInput is what segmentation looks at for one profile.
type SegmentInput struct {
	Orders     int           // distinct purchase days
	SinceLast  time.Duration // since the last purchase day
	Spend      float64       // total spend, minor units
	PAlive     float64       // BG/NBD P(alive), when HasPAlive
	HasPAlive  bool
	SinceFirst time.Duration // since the first purchase day
}

// SegmentThresholds adapt segmentation to the shop's own distribution:
// they are quantiles of its customers, not fixed numbers.
type SegmentThresholds struct {
	// RecentCut is the median time since last purchase among customers:
	// half the shop's buyers bought more recently than this.
	RecentCut time.Duration `json:"recent_cut"`
	// LapsedCut is the 90th percentile of time since last purchase.
	LapsedCut time.Duration `json:"lapsed_cut"`
	// LoyalOrders and LoyalSpend are the 80th percentiles of orders and
	// spend among repeat customers.
	LoyalOrders int     `json:"loyal_orders"`
	LoyalSpend  float64 `json:"loyal_spend"`
	// Customers is how many buyers the quantiles came from.
	Customers int `json:"customers"`
}

// P(alive) cut-offs used when BG/NBD is fitted: below LapsedPAlive a
// customer is lapsed, below AtRiskPAlive at risk.
const (
	AtRiskPAlive = 0.5
	LapsedPAlive = 0.2
)

// MinSegmentCustomers is the fewest buyers whose distribution sets the
// thresholds; with fewer the quantiles would be anecdotes and the fallback
// thresholds apply (30 and 180 days, 3 orders, any spend).
const MinSegmentCustomers = 20

// FitSegmentThresholds computes the thresholds from every buyer's input.
func FitSegmentThresholds(in []SegmentInput) SegmentThresholds {
	var since []time.Duration
	var orders []int
	var spend []float64
	for _, s := range in {
		if s.Orders == 0 {
			continue
		}
		since = append(since, s.SinceLast)
		if s.Orders > 1 {
			orders = append(orders, s.Orders)
			spend = append(spend, s.Spend)
		}
	}
	th := SegmentThresholds{RecentCut: 30 * 24 * time.Hour, LapsedCut: 180 * 24 * time.Hour, LoyalOrders: 3, Customers: len(since)}
	if len(since) < MinSegmentCustomers {
		return th
	}
	sort.Slice(since, func(i, j int) bool { return since[i] < since[j] })
	th.RecentCut, th.LapsedCut = quantile(since, 0.5), quantile(since, 0.9)
	if len(orders) >= MinSegmentCustomers/2 {
		sort.Ints(orders)
		sort.Float64s(spend)
		th.LoyalOrders = max(orders[int(0.8*float64(len(orders)-1))], 2)
		th.LoyalSpend = spend[int(0.8*float64(len(spend)-1))]
	}
	return th
}

// Segment assigns one profile's lifecycle segment. Rules, first match wins:
//
//	no order                                          → prospect
//	P(alive) < 0.2, or silent longer than LapsedCut   → lapsed
//	one order, bought within RecentCut                → new
//	P(alive) < 0.5, or silent longer than RecentCut
//	  without a P(alive) to say otherwise (one-time
//	  buyers always have P(alive) = 1 in BG/NBD)      → at_risk
//	orders ≥ LoyalOrders and spend ≥ LoyalSpend       → loyal
//	otherwise                                         → active
func (th SegmentThresholds) Segment(s SegmentInput) string {
	switch {
	case s.Orders == 0:
		return SegmentProspect
	case s.HasPAlive && s.PAlive < LapsedPAlive, s.SinceLast > th.LapsedCut:
		return SegmentLapsed
	case s.Orders == 1 && s.SinceFirst <= th.RecentCut:
		return SegmentNew
	case s.HasPAlive && s.PAlive < AtRiskPAlive, s.SinceLast > th.RecentCut && (!s.HasPAlive || s.Orders == 1):
		return SegmentAtRisk
	case s.Orders >= th.LoyalOrders && s.Spend >= th.LoyalSpend:
		return SegmentLoyal
	}
	return SegmentActive
}
