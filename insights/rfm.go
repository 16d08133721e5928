package insights

import (
	"sort"
	"time"
)

// Purchase is one order as the churn and value models see it.
type Purchase struct {
	At time.Time
	// Value is the order's amount, in minor units for store data (the
	// CDNOW files are in dollars; the models do not care about the unit).
	Value float64
}

// RFM summarises one customer's purchases the way BG/NBD and Gamma-Gamma
// need them (Fader, Hardie & Lee 2005, §2; lifetimes' conventions):
// purchases on the same day are merged into one, time is in weeks.
type RFM struct {
	// Frequency is x, the number of repeat purchase days: distinct purchase
	// days minus the first.
	Frequency int `json:"frequency"`
	// Recency is t_x, weeks from the first to the last purchase day.
	Recency float64 `json:"recency"`
	// T is weeks from the first purchase day to the end of the calibration
	// period.
	T float64 `json:"T"`
	// MonetaryValue is the mean value of the repeat purchase days (the
	// first is excluded, as in Fader, Hardie & Lee 2005b); 0 when x is 0.
	MonetaryValue float64 `json:"monetary_value"`
}

// civilDay is a calendar date, independent of time of day and DST.
type civilDay struct{ y, m, d int }

func dayOf(t time.Time, loc *time.Location) civilDay {
	y, m, d := t.In(loc).Date()
	return civilDay{y, int(m), d}
}

// daysBetween counts calendar days from a to b.
func daysBetween(a, b civilDay) int {
	ta := time.Date(a.y, time.Month(a.m), a.d, 0, 0, 0, 0, time.UTC)
	tb := time.Date(b.y, time.Month(b.m), b.d, 0, 0, 0, 0, time.UTC)
	return int(tb.Sub(ta).Hours()/24 + 0.5*sign(tb.Sub(ta).Hours()))
}

func sign(f float64) float64 {
	switch {
	case f > 0:
		return 1
	case f < 0:
		return -1
	}
	return 0
}

// Summarize builds a customer's RFM from their purchases up to and
// including the calendar day of end, counting days in loc. ok is false
// when there is no purchase by then.
func Summarize(ps []Purchase, end time.Time, loc *time.Location) (RFM, bool) {
	if loc == nil {
		loc = time.UTC
	}
	last := dayOf(end, loc)
	byDay := map[civilDay]float64{}
	for _, p := range ps {
		d := dayOf(p.At, loc)
		if daysBetween(d, last) < 0 {
			continue
		}
		byDay[d] += p.Value
	}
	if len(byDay) == 0 {
		return RFM{}, false
	}
	days := make([]civilDay, 0, len(byDay))
	for d := range byDay {
		days = append(days, d)
	}
	sort.Slice(days, func(i, j int) bool { return daysBetween(days[i], days[j]) > 0 })
	first := days[0]
	r := RFM{
		Frequency: len(days) - 1,
		Recency:   float64(daysBetween(first, days[len(days)-1])) / 7,
		T:         float64(daysBetween(first, last)) / 7,
	}
	if r.Frequency > 0 {
		var sum float64
		for _, d := range days[1:] {
			sum += byDay[d]
		}
		r.MonetaryValue = sum / float64(r.Frequency)
	}
	return r, true
}
