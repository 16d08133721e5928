package insights

import (
	"time"
)

// HoursPerWeek is the number of hour-of-week slots (Monday 00:00 = 0).
const HoursPerWeek = 7 * 24

// SendTimePrior is the pseudo-count of the shop-wide distribution in a
// profile's send-time estimate: a profile's own events outweigh the shop
// only once it has more than this many (two clicks do not decide).
const SendTimePrior = 10.0

// HourOfWeek is the slot of t in loc, with weeks starting on Monday.
func HourOfWeek(t time.Time, loc *time.Location) int {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	return ((int(lt.Weekday())+6)%7)*24 + lt.Hour()
}

// Histogram counts events per hour of week.
type Histogram [HoursPerWeek]float64

// Total is the number of events counted.
func (h *Histogram) Total() float64 {
	var s float64
	for _, v := range h {
		s += v
	}
	return s
}

// Shrunk returns the profile's distribution shrunk toward the shop's: a
// Dirichlet posterior mean with the shop distribution scaled to
// SendTimePrior pseudo-events as the prior,
//
//	p(h) = (n_h + k·q_h) / (n + k)
//
// where n_h are the profile's events, q the shop's normalized histogram
// and k = SendTimePrior.
func (h *Histogram) Shrunk(shop *Histogram) Histogram {
	var out Histogram
	n, m := h.Total(), shop.Total()
	for i := range out {
		q := 1.0 / HoursPerWeek
		if m > 0 {
			q = shop[i] / m
		}
		out[i] = (h[i] + SendTimePrior*q) / (n + SendTimePrior)
	}
	return out
}

// BestHour picks the hour of day (0–23) whose slots carry the most mass
// summed over the week, since sends are scheduled "within the next 24
// h" whatever the weekday. ok is false for an empty histogram.
func (h *Histogram) BestHour() (int, bool) {
	var byHour [24]float64
	var total float64
	for i, v := range h {
		byHour[i%24] += v
		total += v
	}
	if total <= 0 {
		return 0, false
	}
	best := 0
	for i := range byHour {
		if byHour[i] > byHour[best] {
			best = i
		}
	}
	return best, true
}
