package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNiceMax(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, top, step int }{
		{0, 1, 1}, {1, 1, 1}, {3, 5, 1}, {7, 10, 2}, {10, 10, 2}, {11, 20, 5}, {180, 200, 50}, {999, 1000, 250}, {4001, 5000, 1250},
	}
	for _, tc := range tests {
		top, step := niceMax(tc.in)
		require.Equal(t, [2]int{tc.top, tc.step}, [2]int{top, step}, "niceMax(%d)", tc.in)
		require.GreaterOrEqual(t, top, tc.in)
	}
}

func TestLineChartGeometry(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC)
	vals := make([]int, 24*60)
	vals[0], vals[len(vals)-1] = 10, 5
	c := newLineChart([]series{seriesOf("web", "#000", vals)}, start, time.Minute, 4*time.Hour)
	pts := strings.Fields(c.Series[0].Points)
	require.Len(t, pts, len(vals))
	require.Equal(t, "48.0,12.0", pts[0], "the peak touches the top of the plot")
	require.Equal(t, "948.0,112.0", pts[len(pts)-1], "the last point sits at the right edge, half height")
	require.Equal(t, 10, c.Max)
	var labels []string
	for _, x := range c.XTicks {
		labels = append(labels, x.Label)
	}
	require.Equal(t, []string{"12:00", "16:00", "20:00", "00:00", "04:00", "08:00"}, labels, "labels sit on round clock hours")
	require.False(t, c.Empty)
	require.True(t, newLineChart([]series{seriesOf("web", "#000", make([]int, 10))}, start, time.Minute, time.Hour).Empty)
}

func TestBarChartStacks(t *testing.T) {
	t.Parallel()
	c := newBarChart([]string{"a", "b"}, []string{"sent", "held out", "dead"}, [][]int{{3, 0}, {1, 0}, {1, 2}})
	require.Len(t, c.Bars, 2)
	require.Equal(t, 5, c.Bars[0].Total)
	require.Len(t, c.Bars[0].Segs, 3)
	require.Len(t, c.Bars[1].Segs, 1)
	// Segments stack upwards from the axis without gaps.
	require.InDelta(t, c.BottomY, c.Bars[0].Segs[0].Y+c.Bars[0].Segs[0].H, 1e-9)
	require.InDelta(t, c.Bars[0].Segs[0].Y, c.Bars[0].Segs[1].Y+c.Bars[0].Segs[1].H, 1e-9)
	require.Equal(t, "a: 1 dead", c.Bars[0].Segs[2].Title)
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1712324608: "1.6 GiB"} {
		require.Equal(t, want, humanBytes(in))
	}
}
