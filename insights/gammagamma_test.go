package insights

import (
	"errors"
	"math"
	"testing"
)

func spendObs(cs []RFM) []SpendObservation {
	out := make([]SpendObservation, 0, len(cs))
	for _, c := range cs {
		out = append(out, SpendObservation{Frequency: c.Frequency, Mean: c.MonetaryValue})
	}
	return out
}

// TestFitGammaGammaReproducesPublished checks p, q, γ of Fader & Hardie
// (2013) on the published summary (repeat customers' mean repeat spend)
// and on the same summary rebuilt from CDNOW_sample.txt.
func TestFitGammaGammaReproducesPublished(t *testing.T) {
	t.Parallel()
	fromRaw, _ := cdnowCalibration(t)
	sources := []struct {
		name string
		cs   []RFM
	}{
		{"published summary", readSummaryCSV(t, "cdnow_customers_summary_with_transactions.csv")},
		{"rebuilt from transactions", fromRaw},
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			g, err := FitGammaGamma(spendObs(s.cs))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"p", g.P, 6.25}, {"q", g.Q, 3.74}, {"gamma", g.Gamma, 15.44}} {
				if math.Abs(c.got-c.want) > 0.01 {
					t.Errorf("%s = %.4f, want %.2f ± 0.01", c.name, c.got, c.want)
				}
			}
			if g.Customers != 946 {
				t.Errorf("customers = %d, want 946 repeat buyers", g.Customers)
			}
			t.Logf("p=%.4f q=%.4f gamma=%.4f", g.P, g.Q, g.Gamma)
		})
	}
}

func TestGammaGammaExpectedSpend(t *testing.T) {
	t.Parallel()
	g := GammaGammaParams{P: 6.25, Q: 3.74, Gamma: 15.44}
	pop := g.P * g.Gamma / (g.Q - 1)
	tests := []struct {
		name string
		o    SpendObservation
		want func(float64) bool
	}{
		{"no repeats is the population mean", SpendObservation{}, func(v float64) bool { return math.Abs(v-pop) < 1e-9 }},
		{"one high repeat is pulled toward the mean", SpendObservation{Frequency: 1, Mean: 200}, func(v float64) bool { return v > pop && v < 200 }},
		{"many repeats trust the customer", SpendObservation{Frequency: 200, Mean: 100}, func(v float64) bool { return math.Abs(v-100) < 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := g.ExpectedSpend(tc.o)
			if !ok || !tc.want(v) {
				t.Fatalf("ExpectedSpend = %v, %v (population mean %v)", v, ok, pop)
			}
		})
	}
	if _, ok := (GammaGammaParams{P: 1, Q: 0.9, Gamma: 1}).ExpectedSpend(SpendObservation{}); ok {
		t.Fatal("q <= 1 has no mean but ExpectedSpend answered")
	}
	if _, err := FitGammaGamma([]SpendObservation{{Frequency: 1, Mean: 3}}); !errors.Is(err, ErrNotEnoughData) {
		t.Fatalf("err = %v", err)
	}
}
