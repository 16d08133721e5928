package admin

import "math"

// MinLiftGroup is the smallest group (sent journeys, or held-out journeys)
// for which the page shows a lift. Below about 30 per arm the normal
// approximations behind any simple interval are poor, and the interval
// would be so wide that showing it invites over-reading noise.
const MinLiftGroup = 30

// z95 is the standard normal quantile for a two-sided 95 % interval.
const z95 = 1.959963984540054

// Lift compares the conversion rate of journeys that were sent with that
// of held-out journeys of the same rule.
type Lift struct {
	// SentN journeys were sent, SentConv of them converted; HeldN and
	// HeldConv are the same for the held-out journeys.
	SentN, SentConv int
	HeldN, HeldConv int
	// Enough is false when either group is smaller than MinLiftGroup; the
	// rates below are then not computed.
	Enough bool
	// SentRate and HeldRate are conversion rates; Diff is SentRate −
	// HeldRate, with Low and High its 95 % interval.
	SentRate, HeldRate float64
	Diff, Low, High    float64
}

// Significant reports whether the interval excludes zero.
func (l Lift) Significant() bool { return l.Enough && (l.Low > 0 || l.High < 0) }

// computeLift builds a Lift. Conversions above the group size (a customer
// who ordered twice within the window) are capped at it, so a rate never
// exceeds one.
//
// The interval on the difference is Newcombe's hybrid score interval
// (Newcombe 1998, method 10): it combines the Wilson score intervals of
// the two rates. Unlike the Wald interval it stays inside [−1, 1] and
// keeps close to 95 % coverage when a rate is near 0, which is where
// email conversion rates live.
func computeLift(sentN, sentConv, heldN, heldConv int) Lift {
	l := Lift{SentN: sentN, SentConv: min(sentConv, sentN), HeldN: heldN, HeldConv: min(heldConv, heldN)}
	if sentN < MinLiftGroup || heldN < MinLiftGroup {
		return l
	}
	l.Enough = true
	p1 := float64(l.SentConv) / float64(sentN)
	p0 := float64(l.HeldConv) / float64(heldN)
	l1, u1 := wilson(l.SentConv, sentN, z95)
	l0, u0 := wilson(l.HeldConv, heldN, z95)
	l.SentRate, l.HeldRate, l.Diff = p1, p0, p1-p0
	l.Low = l.Diff - math.Sqrt((p1-l1)*(p1-l1)+(u0-p0)*(u0-p0))
	l.High = l.Diff + math.Sqrt((u1-p1)*(u1-p1)+(p0-l0)*(p0-l0))
	return l
}

// wilson is the Wilson score interval for x successes in n trials.
func wilson(x, n int, z float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p := float64(x) / float64(n)
	nf := float64(n)
	z2 := z * z
	center := (p + z2/(2*nf)) / (1 + z2/nf)
	half := z / (1 + z2/nf) * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return math.Max(0, center-half), math.Min(1, center+half)
}
