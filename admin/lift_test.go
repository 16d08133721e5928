package admin

import (
	"math"
	"testing"
)

func TestComputeLift(t *testing.T) {
	t.Parallel()
	// Reference values: Newcombe (1998), "Interval estimation for the
	// difference between independent proportions", Stat. Med. 17:873,
	// Table II, method 10 (score interval, no continuity correction).
	tests := []struct {
		name                       string
		sentN, sentX, heldN, heldX int
		enough                     bool
		diff, low, high            float64
	}{
		{name: "newcombe example a", sentN: 70, sentX: 56, heldN: 80, heldX: 48, enough: true, diff: 0.2, low: 0.0524, high: 0.3339},
		{name: "newcombe example h (zero rates)", sentN: 34, sentX: 0, heldN: 34, heldX: 0, enough: true, diff: 0, low: -0.1016, high: 0.1016},
		{name: "below the minimum sent", sentN: MinLiftGroup - 1, sentX: 10, heldN: 100, heldX: 5},
		{name: "below the minimum held", sentN: 100, sentX: 10, heldN: MinLiftGroup - 1, heldX: 5},
		{name: "conversions capped at group size", sentN: 30, sentX: 45, heldN: 30, heldX: 0, enough: true, diff: 1, low: 0.8395, high: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := computeLift(tc.sentN, tc.sentX, tc.heldN, tc.heldX)
			if l.Enough != tc.enough {
				t.Fatalf("Enough = %v, want %v", l.Enough, tc.enough)
			}
			if !tc.enough {
				if l.Significant() {
					t.Fatal("an insufficient lift must not be significant")
				}
				return
			}
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"diff", l.Diff, tc.diff}, {"low", l.Low, tc.low}, {"high", l.High, tc.high}} {
				if math.Abs(c.got-c.want) > 0.00051 {
					t.Errorf("%s = %.4f, want %.4f", c.name, c.got, c.want)
				}
			}
			if l.Low > l.Diff || l.High < l.Diff || l.Low < -1 || l.High > 1 {
				t.Errorf("interval [%f, %f] does not hold %f inside [-1, 1]", l.Low, l.High, l.Diff)
			}
		})
	}
}
