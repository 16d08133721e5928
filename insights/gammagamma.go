package insights

import (
	"fmt"
	"math"
)

// MinGammaGammaRepeaters is the fewest repeat customers Gamma-Gamma is
// fitted on.
const MinGammaGammaRepeaters = 10

// GammaGammaParams are the spend model's parameters (Fader, Hardie & Lee
// 2005b "RFM and CLV"; Fader & Hardie 2013 "The Gamma-Gamma model of
// monetary value"): transaction values z ~ Gamma(p, ν) with ν ~ Gamma(q, γ).
type GammaGammaParams struct {
	P     float64 `json:"p"`
	Q     float64 `json:"q"`
	Gamma float64 `json:"gamma"`
}

// GammaGamma is a fitted spend model.
type GammaGamma struct {
	GammaGammaParams
	LogLikelihood float64 `json:"log_likelihood"`
	// Customers is the number of repeat customers it was fitted on.
	Customers int `json:"customers"`
}

// SpendObservation is a repeat customer's number of repeat transactions x
// and their mean value zbar.
type SpendObservation struct {
	Frequency int
	Mean      float64
}

// ggLogLik is one customer's log-likelihood of (x, zbar), Fader & Hardie
// 2013 eq. (3), dropping the Jacobian constant that does not depend on the
// parameters (as lifetimes does, so the optimum is the same):
//
//	Γ(px+q)/(Γ(px)Γ(q)) γ^q zbar^(px-1) x^(px) / (γ + x zbar)^(px+q)
func ggLogLik(g GammaGammaParams, o SpendObservation) float64 {
	x := float64(o.Frequency)
	lg := func(v float64) float64 { l, _ := math.Lgamma(v); return l }
	px := g.P * x
	return lg(px+g.Q) - lg(px) - lg(g.Q) + g.Q*math.Log(g.Gamma) +
		(px-1)*math.Log(o.Mean) + px*math.Log(x) - (px+g.Q)*math.Log(x*o.Mean+g.Gamma)
}

// LogLikelihood sums eq. (3) over repeat customers.
func (g GammaGammaParams) LogLikelihood(obs []SpendObservation) float64 {
	var ll float64
	for _, o := range obs {
		ll += ggLogLik(g, o)
	}
	return ll
}

// FitGammaGamma estimates p, q, γ by maximum likelihood on repeat
// customers (Frequency > 0 and a positive mean); others are ignored, since
// the model describes repeat transactions only.
func FitGammaGamma(all []SpendObservation) (GammaGamma, error) {
	var obs []SpendObservation
	var mean float64
	for _, o := range all {
		if o.Frequency > 0 && o.Mean > 0 {
			obs = append(obs, o)
			mean += o.Mean
		}
	}
	if len(obs) < MinGammaGammaRepeaters {
		return GammaGamma{}, fmt.Errorf("gamma-gamma: %d repeat customers: %w", len(obs), ErrNotEnoughData)
	}
	mean /= float64(len(obs))
	toParams := func(x []float64) GammaGammaParams {
		return GammaGammaParams{P: math.Exp(x[0]), Q: math.Exp(x[1]), Gamma: math.Exp(x[2])}
	}
	// γ starts on the scale of the spend so the unit (dollars or cents)
	// does not matter to the search.
	x0 := []float64{0, 0, math.Log(mean)}
	x, f, err := minimize(func(x []float64) float64 { return -toParams(x).LogLikelihood(obs) }, x0)
	if err != nil {
		return GammaGamma{}, fmt.Errorf("gamma-gamma: %w", err)
	}
	return GammaGamma{GammaGammaParams: toParams(x), LogLikelihood: -f, Customers: len(obs)}, nil
}

// ExpectedSpend is the conditional expected mean transaction value of a
// customer with x repeat transactions of mean zbar, Fader & Hardie 2013
// eq. (5): a weighted average of the population mean pγ/(q-1) and the
// customer's own mean. For x = 0 it is the population mean. ok is false
// when q <= 1 (the population mean does not exist).
func (g GammaGammaParams) ExpectedSpend(o SpendObservation) (float64, bool) {
	if g.Q <= 1 {
		return 0, false
	}
	x := float64(o.Frequency)
	if o.Frequency <= 0 || o.Mean <= 0 {
		x = 0
	}
	return g.P * (g.Gamma + x*o.Mean) / (g.P*x + g.Q - 1), true
}

// CLV is the undiscounted expected value of a customer's purchases over
// the next horizon weeks: expected transactions (BG/NBD eq. 10) times
// expected spend per transaction (Gamma-Gamma eq. 5). Over a year the
// discounting lifetimes applies by default changes little and would add a
// parameter nobody sets, so it is left out.
func CLV(b BGNBDParams, g GammaGammaParams, c RFM, horizonWeeks float64) (float64, bool) {
	spend, ok := g.ExpectedSpend(SpendObservation{Frequency: c.Frequency, Mean: c.MonetaryValue})
	if !ok {
		return 0, false
	}
	return b.ExpectedPurchases(horizonWeeks, c) * spend, true
}
