package insights

import (
	"math"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

func TestReplenishIntervals(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	m := NewReplenishModel()
	// Coffee every ~30 days, with one outlier of 200 days; a mug bought
	// twice by one person is too little to say anything.
	for c, gaps := range map[string][]int{"a": {30, 31, 29}, "b": {28, 30}, "c": {200, 30}} {
		at := t0
		m.Add(c, "coffee", at)
		m.Add(c, "coffee", at.Add(time.Hour)) // same-day split order: not a refill
		for _, g := range gaps {
			at = at.Add(time.Duration(g) * day)
			m.Add(c, "coffee", at)
		}
	}
	m.Add("a", "mug", t0)
	m.Add("a", "mug", t0.Add(40*day))
	got := m.Intervals()
	if len(got) != 1 || got[0].ProductID != "coffee" {
		t.Fatalf("got %+v", got)
	}
	ri := got[0]
	if ri.Samples != 7 || ri.Buyers != 3 || ri.Median != 30*day {
		t.Fatalf("got %+v, want 7 samples, 3 buyers, median 30d", ri)
	}
	if ri.P25 > ri.Median || ri.P75 < ri.Median {
		t.Fatalf("quartiles %v %v around %v", ri.P25, ri.P75, ri.Median)
	}
	if d := ri.ReorderDate(t0); d != t0.Add(30*day) {
		t.Fatalf("reorder %v", d)
	}
}

func TestSendTimeShrinkage(t *testing.T) {
	t.Parallel()
	var shop Histogram
	for range 100 {
		shop[HourOfWeek(t0.Add(9*time.Hour), time.UTC)]++ // shop reads at 19:00
	}
	tests := []struct {
		name   string
		events int
		want   int
	}{
		{"two clicks at 07:00 do not outvote the shop", 2, 19},
		{"forty clicks at 07:00 do", 40, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for range tc.events {
				h[HourOfWeek(time.Date(2026, 3, 3, 7, 5, 0, 0, time.UTC), time.UTC)]++
			}
			s := h.Shrunk(&shop)
			var sum float64
			for _, v := range s {
				sum += v
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Fatalf("shrunk distribution sums to %v", sum)
			}
			if got, ok := s.BestHour(); !ok || got != tc.want {
				t.Fatalf("best hour %d, want %d", got, tc.want)
			}
		})
	}
	if _, ok := (&Histogram{}).BestHour(); ok {
		t.Fatal("empty histogram has a best hour")
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	if got := HourOfWeek(t0, paris); got != 11 { // Monday 10:00 UTC = 11:00 CET
		t.Fatalf("hour of week %d", got)
	}
}

func TestEngagementScores(t *testing.T) {
	t.Parallel()
	now := t0
	rec := func(k behavior.Kind, ago time.Duration) behavior.Record {
		return behavior.Record{Kind: k, At: now.Add(-ago)}
	}
	machine := rec(behavior.EmailOpened, time.Hour)
	machine.SetRef(behavior.RefMachineOpen, "true")
	tests := []struct {
		name    string
		recs    []behavior.Record
		ok      bool
		check   func(Scores) bool
		explain string
	}{
		{"nothing", nil, false, nil, ""},
		{"machine opens do not count", []behavior.Record{machine}, false, nil, ""},
		{"a cart add now shows intent", []behavior.Record{rec(behavior.CartUpdated, time.Hour)}, true,
			func(s Scores) bool { return s.Intent > 20 && s.Engagement > 10 }, "intent > 20"},
		{"an order resets intent", []behavior.Record{rec(behavior.CartUpdated, 2*time.Hour), rec(behavior.OrderPlaced, time.Hour)}, true,
			func(s Scores) bool { return s.Intent == 0 && s.Engagement > 0 }, "intent 0"},
		{"old activity decays", []behavior.Record{rec(behavior.EmailClicked, 140*24*time.Hour)}, true,
			func(s Scores) bool { return s.Engagement < 1 }, "engagement < 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := EngagementScores(tc.recs, now)
			if ok != tc.ok || (ok && !tc.check(s)) {
				t.Fatalf("got %+v, %v; want ok=%v and %s", s, ok, tc.ok, tc.explain)
			}
			if s.Engagement < 0 || s.Engagement >= 100 || s.Intent < 0 || s.Intent >= 100 {
				t.Fatalf("out of range: %+v", s)
			}
		})
	}
	many := make([]behavior.Record, 0, 50)
	for i := range 50 {
		many = append(many, rec(behavior.ProductViewed, time.Duration(i)*time.Minute))
	}
	few, _ := EngagementScores(many[:3], now)
	lots, _ := EngagementScores(many, now)
	if !(lots.Engagement > few.Engagement) {
		t.Fatalf("more activity must score higher: %v vs %v", lots, few)
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	// A shop whose buyers last bought 1..100 days ago.
	var in []SegmentInput
	for i := 1; i <= 100; i++ {
		in = append(in, SegmentInput{Orders: 1 + i%5, SinceLast: time.Duration(i) * day, Spend: float64(1000 * (i % 7))})
	}
	th := FitSegmentThresholds(in)
	if th.RecentCut < 45*day || th.RecentCut > 55*day || th.LapsedCut < 85*day || th.LapsedCut > 95*day {
		t.Fatalf("thresholds %+v do not follow the shop's distribution", th)
	}
	tests := []struct {
		name string
		in   SegmentInput
		want string
	}{
		{"never ordered", SegmentInput{}, SegmentProspect},
		{"first order last week", SegmentInput{Orders: 1, SinceLast: 7 * day, SinceFirst: 7 * day, HasPAlive: true, PAlive: 1}, SegmentNew},
		{"one order long ago", SegmentInput{Orders: 1, SinceLast: 70 * day, SinceFirst: 70 * day, HasPAlive: true, PAlive: 1}, SegmentAtRisk},
		{"gone by the model", SegmentInput{Orders: 4, SinceLast: 60 * day, HasPAlive: true, PAlive: 0.1}, SegmentLapsed},
		{"silent beyond the lapsed cut", SegmentInput{Orders: 3, SinceLast: 200 * day, HasPAlive: true, PAlive: 0.6}, SegmentLapsed},
		{"slipping", SegmentInput{Orders: 3, SinceLast: 20 * day, HasPAlive: true, PAlive: 0.4}, SegmentAtRisk},
		{"best customers", SegmentInput{Orders: 9, SinceLast: 5 * day, Spend: 1e6, HasPAlive: true, PAlive: 0.95}, SegmentLoyal},
		{"regular", SegmentInput{Orders: 2, SinceLast: 5 * day, Spend: 100, HasPAlive: true, PAlive: 0.95}, SegmentActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := th.Segment(tc.in); got != tc.want {
				t.Fatalf("segment %q, want %q (thresholds %+v)", got, tc.want, th)
			}
		})
	}
	if small := FitSegmentThresholds(in[:5]); small.RecentCut != 30*day {
		t.Fatalf("too few customers must use the fallback, got %+v", small)
	}
}

func TestOrdersDedupeAndCancel(t *testing.T) {
	t.Parallel()
	mk := func(kind behavior.Kind, id, orderID string) behavior.Record {
		r := behavior.Record{ID: id, Kind: kind, Source: "shopify", Store: "main", At: t0, Value: 500}
		r.SetRef(behavior.RefOrderID, orderID)
		return r
	}
	recs := []behavior.Record{
		mk(behavior.OrderPlaced, "1", "A"), mk(behavior.OrderPaid, "2", "A"), // one order
		mk(behavior.OrderPaid, "3", "B"), // paid-only source
		mk(behavior.OrderPlaced, "4", "C"), mk(behavior.OrderCancelled, "5", "C"),
	}
	got := Orders(recs)
	if len(got) != 2 || got[0].ID != "1" || got[1].ID != "3" {
		t.Fatalf("orders %+v", got)
	}
}
