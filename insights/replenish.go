package insights

import (
	"sort"
	"time"
)

// MinReplenishIntervals is the fewest repeat-purchase intervals a product
// needs before it gets a reorder interval.
const MinReplenishIntervals = 5

// ReplenishInterval is what a product's repeat buyers tell about how long
// a unit lasts.
type ReplenishInterval struct {
	ProductID string `json:"product_id"`
	// Median is the median of the intervals between one customer's
	// successive purchase days of the product: robust to the customer who
	// came back after two years.
	Median time.Duration `json:"median"`
	// P25 and P75 bound the middle half of the intervals.
	P25 time.Duration `json:"p25"`
	P75 time.Duration `json:"p75"`
	// Samples is the number of intervals and Buyers the number of repeat
	// buyers they came from.
	Samples int `json:"samples"`
	Buyers  int `json:"buyers"`
}

// ReplenishModel learns inter-purchase intervals per product from
// (customer, product, purchase time) observations.
type ReplenishModel struct {
	days map[string]map[string][]time.Time // product → customer → purchase times
	// whole is what AddCustomer learned: product → the gaps of customers
	// added whole, without their purchase times.
	whole map[string]*customerGaps
}

type customerGaps struct {
	gaps   []time.Duration
	buyers int // customers with at least one gap
}

// NewReplenishModel returns an empty model.
func NewReplenishModel() *ReplenishModel {
	return &ReplenishModel{days: map[string]map[string][]time.Time{}, whole: map[string]*customerGaps{}}
}

// AddCustomer records every purchase of one customer at once (product →
// purchase times). The customer must not be added again, by Add or
// AddCustomer: only the intervals are kept, which bounds a refit's memory
// by the repeat purchases instead of every order of the history. The
// result is what Add of each purchase would give.
func (m *ReplenishModel) AddCustomer(customer string, bought map[string][]time.Time) {
	if customer == "" {
		return
	}
	for p, ts := range bought {
		if p == "" {
			continue
		}
		g := purchaseGaps(ts)
		c := m.whole[p]
		if c == nil {
			c = &customerGaps{}
			m.whole[p] = c
		}
		if len(g) > 0 {
			c.buyers++
			c.gaps = append(c.gaps, g...)
		}
	}
}

// Add records that customer bought product at t.
func (m *ReplenishModel) Add(customer, product string, t time.Time) {
	if customer == "" || product == "" {
		return
	}
	c := m.days[product]
	if c == nil {
		c = map[string][]time.Time{}
		m.days[product] = c
	}
	c[customer] = append(c[customer], t)
}

// Intervals returns the interval distribution of every product with at
// least MinReplenishIntervals intervals, most-sampled first. Purchases
// less than a day apart are one purchase (a split order is not a refill).
func (m *ReplenishModel) Intervals() []ReplenishInterval {
	var out []ReplenishInterval
	products := map[string]bool{}
	for p := range m.days {
		products[p] = true
	}
	for p := range m.whole {
		products[p] = true
	}
	for p := range products {
		var gaps []time.Duration
		buyers := 0
		if c := m.whole[p]; c != nil {
			gaps = append(gaps, c.gaps...)
			buyers = c.buyers
		}
		for _, ts := range m.days[p] {
			g := purchaseGaps(ts)
			if len(g) > 0 {
				buyers++
				gaps = append(gaps, g...)
			}
		}
		if len(gaps) < MinReplenishIntervals {
			continue
		}
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		out = append(out, ReplenishInterval{
			ProductID: p, Median: quantile(gaps, 0.5), P25: quantile(gaps, 0.25), P75: quantile(gaps, 0.75),
			Samples: len(gaps), Buyers: buyers,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Samples != out[j].Samples {
			return out[i].Samples > out[j].Samples
		}
		return out[i].ProductID < out[j].ProductID
	})
	return out
}

// purchaseGaps sorts ts and returns the gaps of at least a day between
// successive purchases.
func purchaseGaps(ts []time.Time) []time.Duration {
	if len(ts) < 2 {
		return nil
	}
	s := append([]time.Time(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	var gaps []time.Duration
	last := s[0]
	for _, t := range s[1:] {
		if d := t.Sub(last); d >= 24*time.Hour {
			gaps = append(gaps, d)
			last = t
		}
	}
	return gaps
}

// quantile interpolates linearly in sorted (type 7, as R and numpy).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(pos)
	if lo+1 >= len(sorted) {
		return sorted[lo]
	}
	frac := pos - float64(lo)
	return sorted[lo] + time.Duration(frac*float64(sorted[lo+1]-sorted[lo]))
}

// ReorderDate is when someone who last bought a product at last is
// expected to need it again.
func (ri ReplenishInterval) ReorderDate(last time.Time) time.Time {
	return last.Add(ri.Median)
}
