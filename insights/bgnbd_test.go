package insights

import (
	"errors"
	"math"
	"testing"
)

// TestFitBGNBDReproducesPublished fits CDNOW_sample (calibration end
// 1997-09-30) and checks Fader, Hardie & Lee's (2005) published estimates
// and log-likelihood, and their conditional expectation example.
func TestFitBGNBDReproducesPublished(t *testing.T) {
	t.Parallel()
	cs, _ := cdnowCalibration(t)
	m, err := FitBGNBD(cs)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"r", m.R, 0.243, 0.001},
		{"alpha", m.Alpha, 4.414, 0.01},
		{"a", m.A, 0.793, 0.001},
		{"b", m.B, 2.426, 0.01},
		{"log-likelihood", m.LogLikelihood, -9582.43, 0.05},
		{"E[Y(39)|x=2,t_x=30.43,T=38.86]", m.ExpectedPurchases(39, RFM{Frequency: 2, Recency: 30.43, T: 38.86}), 1.226, 0.001},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > c.tol {
			t.Errorf("%s = %.5f, want %.5f ± %g", c.name, c.got, c.want, c.tol)
		}
	}
	if m.Customers != 2357 {
		t.Errorf("customers = %d, want 2357", m.Customers)
	}
	t.Logf("r=%.4f alpha=%.4f a=%.4f b=%.4f ll=%.4f", m.R, m.Alpha, m.A, m.B, m.LogLikelihood)
}

// TestFitBGNBDOnSummary fits lifetimes' published summary file directly.
func TestFitBGNBDOnSummary(t *testing.T) {
	t.Parallel()
	m, err := FitBGNBD(readSummaryCSV(t, "cdnow_customers_summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.R-0.243) > 0.001 || math.Abs(m.A-0.793) > 0.001 || math.Abs(m.LogLikelihood+9582.43) > 0.05 {
		t.Fatalf("fit %+v", m)
	}
}

func TestBGNBDPredictions(t *testing.T) {
	t.Parallel()
	p := BGNBDParams{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}
	tests := []struct {
		name   string
		c      RFM
		wantPA func(float64) bool
	}{
		{"no repeat is alive", RFM{Frequency: 0, T: 38}, func(v float64) bool { return v == 1 }},
		{"recent repeat buyer likely alive", RFM{Frequency: 5, Recency: 37, T: 38}, func(v float64) bool { return v > 0.85 }},
		{"long-silent repeat buyer likely gone", RFM{Frequency: 5, Recency: 5, T: 38}, func(v float64) bool { return v < 0.2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v := p.PAlive(tc.c); !tc.wantPA(v) {
				t.Fatalf("P(alive) = %v", v)
			}
		})
	}
	// More recent activity must mean more expected purchases.
	recent := p.ExpectedPurchases(13, RFM{Frequency: 3, Recency: 35, T: 38})
	old := p.ExpectedPurchases(13, RFM{Frequency: 3, Recency: 10, T: 38})
	if !(recent > old && old > 0) {
		t.Fatalf("E[Y] recent %v, old %v", recent, old)
	}
	// The population expectation over the calibration length is about the
	// observed mean repeat frequency on CDNOW (FHL 2005 Fig. 1 fits well).
	if e := p.PopulationExpected(39); e < 0.5 || e > 2 {
		t.Fatalf("E[X(39)] = %v", e)
	}
	w, ok := p.WeeksToNextPurchase(RFM{Frequency: 5, Recency: 37, T: 38}, 104)
	if !ok || w <= 0 || w > 104 {
		t.Fatalf("weeks to next = %v, %v", w, ok)
	}
	if got := p.ExpectedPurchases(w, RFM{Frequency: 5, Recency: 37, T: 38}); math.Abs(got-0.5) > 0.01 {
		t.Fatalf("E[Y(w)] = %v, want 0.5", got)
	}
	if _, ok := p.WeeksToNextPurchase(RFM{Frequency: 1, Recency: 1, T: 200}, 52); ok {
		t.Fatal("a long-gone customer got a next-order estimate")
	}
}

func TestFitBGNBDNotEnoughData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cs   []RFM
	}{
		{"none", nil},
		{"few customers", make([]RFM, MinBGNBDCustomers-1)},
		{"no repeaters", make([]RFM, 500)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := FitBGNBD(tc.cs); !errors.Is(err, ErrNotEnoughData) {
				t.Fatalf("err = %v, want ErrNotEnoughData", err)
			}
		})
	}
}
