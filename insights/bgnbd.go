package insights

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mathext"
)

// BG/NBD minimum data: below these the fit is unreliable (the model's four
// parameters are mostly identified by the repeat buyers).
const (
	MinBGNBDCustomers = 30
	MinBGNBDRepeaters = 10
)

// BGNBDParams are the four parameters of the BG/NBD model (Fader, Hardie
// & Lee 2005): purchase rates λ ~ Gamma(r, α), dropout probabilities
// p ~ Beta(a, b).
type BGNBDParams struct {
	R     float64 `json:"r"`
	Alpha float64 `json:"alpha"`
	A     float64 `json:"a"`
	B     float64 `json:"b"`
}

// BGNBD is a fitted model.
type BGNBD struct {
	BGNBDParams
	// LogLikelihood is the sum of the customers' log-likelihoods at the
	// optimum.
	LogLikelihood float64 `json:"log_likelihood"`
	// Customers is how many customers the fit used; Repeaters how many of
	// them bought on more than one day.
	Customers int `json:"customers"`
	Repeaters int `json:"repeaters"`
}

// bgnbdLogLik is one customer's log-likelihood, FHL 2005 eq. (6) written
// in logs so that nothing overflows for large x (the "Implementing the
// BG/NBD model" note's A1–A4 decomposition):
//
//	ln L = A1 + A2 + ln(exp(A3) + δ(x>0) exp(A4))
func bgnbdLogLik(p BGNBDParams, c RFM) float64 {
	x := float64(c.Frequency)
	lg := func(v float64) float64 { l, _ := math.Lgamma(v); return l }
	a1 := lg(p.R+x) - lg(p.R) + p.R*math.Log(p.Alpha)
	a2 := lg(p.A+p.B) + lg(p.B+x) - lg(p.B) - lg(p.A+p.B+x)
	a3 := -(p.R + x) * math.Log(p.Alpha+c.T)
	if c.Frequency == 0 {
		return a1 + a2 + a3
	}
	a4 := math.Log(p.A) - math.Log(p.B+x-1) - (p.R+x)*math.Log(p.Alpha+c.Recency)
	return a1 + a2 + logAddExp(a3, a4)
}

func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// LogLikelihood sums eq. (6) over customers.
func (p BGNBDParams) LogLikelihood(cs []RFM) float64 {
	var ll float64
	for _, c := range cs {
		ll += bgnbdLogLik(p, c)
	}
	return ll
}

// FitBGNBD estimates the parameters by maximum likelihood. The search runs
// over the logs of the parameters, which keeps them positive without
// constraints.
func FitBGNBD(cs []RFM) (BGNBD, error) {
	rep := 0
	for _, c := range cs {
		if c.Frequency > 0 {
			rep++
		}
	}
	if len(cs) < MinBGNBDCustomers || rep < MinBGNBDRepeaters {
		return BGNBD{}, fmt.Errorf("bg/nbd: %d customers, %d repeat buyers: %w", len(cs), rep, ErrNotEnoughData)
	}
	toParams := func(x []float64) BGNBDParams {
		return BGNBDParams{R: math.Exp(x[0]), Alpha: math.Exp(x[1]), A: math.Exp(x[2]), B: math.Exp(x[3])}
	}
	// Start where lifetimes does (all ones) but with α on the scale of the
	// observation period, which shortens the search.
	var meanT float64
	for _, c := range cs {
		meanT += c.T
	}
	meanT /= float64(len(cs))
	x0 := []float64{0, math.Log(math.Max(meanT/10, 1)), 0, 0}
	x, f, err := minimize(func(x []float64) float64 { return -toParams(x).LogLikelihood(cs) }, x0)
	if err != nil {
		return BGNBD{}, fmt.Errorf("bg/nbd: %w", err)
	}
	return BGNBD{BGNBDParams: toParams(x), LogLikelihood: -f, Customers: len(cs), Repeaters: rep}, nil
}

// PAlive is the probability that a customer with this history is still
// active at T (Fader, Hardie & Lee, "Computing P(alive) using the BG/NBD
// model", eq. 2).
func (p BGNBDParams) PAlive(c RFM) float64 {
	if c.Frequency == 0 {
		return 1 // BG/NBD: a customer can only drop out right after a purchase
	}
	x := float64(c.Frequency)
	odds := p.A / (p.B + x - 1) * math.Exp((p.R+x)*(math.Log(p.Alpha+c.T)-math.Log(p.Alpha+c.Recency)))
	return 1 / (1 + odds)
}

// ExpectedPurchases is the expected number of repeat purchases in (T, T+t]
// for a customer with this history, FHL 2005 eq. (10). t is in weeks.
func (p BGNBDParams) ExpectedPurchases(t float64, c RFM) float64 {
	if t <= 0 {
		return 0
	}
	x := float64(c.Frequency)
	z := t / (p.Alpha + c.T + t)
	hyp := mathext.Hypergeo(p.R+x, p.B+x, p.A+p.B+x-1, z)
	num := (p.A + p.B + x - 1) / (p.A - 1) *
		(1 - math.Pow((p.Alpha+c.T)/(p.Alpha+c.T+t), p.R+x)*hyp)
	den := 1.0
	if c.Frequency > 0 {
		den += p.A / (p.B + x - 1) * math.Pow((p.Alpha+c.T)/(p.Alpha+c.Recency), p.R+x)
	}
	return num / den
}

// PopulationExpected is E[X(t)], the expected number of purchases in a
// period of length t for a randomly chosen new customer, FHL 2005 eq. (7).
func (p BGNBDParams) PopulationExpected(t float64) float64 {
	hyp := mathext.Hypergeo(p.R, p.B, p.A+p.B-1, t/(p.Alpha+t))
	return (p.A + p.B - 1) / (p.A - 1) * (1 - math.Pow(p.Alpha/(p.Alpha+t), p.R)*hyp)
}

// WeeksToNextPurchase is the horizon t (weeks after T) at which the
// customer is expected to have made half a purchase, E[Y(t)] = 0.5: a
// median-like estimate of the next order that accounts for the chance
// the customer has left. ok is false when that does not happen within
// maxWeeks (the customer is more likely gone than coming back).
func (p BGNBDParams) WeeksToNextPurchase(c RFM, maxWeeks float64) (float64, bool) {
	const target = 0.5
	if p.ExpectedPurchases(maxWeeks, c) < target {
		return 0, false
	}
	lo, hi := 0.0, maxWeeks
	for hi-lo > 1.0/7/24 { // to the hour
		mid := (lo + hi) / 2
		if p.ExpectedPurchases(mid, c) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, true
}
