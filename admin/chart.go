package admin

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Charts are drawn on the server as inline SVG: no script, no library, and
// they print. Geometry is computed here; the templates only place it.

// Chart frame, in SVG user units (the SVG scales to its container).
const (
	chartW   = 960
	chartH   = 240
	padLeft  = 48
	padRight = 12
	padTop   = 12
	padBot   = 28
)

// palette is a colour-blind-safe sequence (Okabe–Ito).
func palette(i int) string {
	p := [...]string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#999999"}
	return p[i%len(p)]
}

type tick struct {
	Pos   float64
	Label string
}

type series struct {
	Name   string
	Color  string
	Values []int
	Points string // SVG polyline points, filled by newLineChart
}

func seriesOf(name, color string, values []int) series {
	return series{Name: name, Color: color, Values: values}
}

// lineChart is a multi-series line chart over equally spaced times.
type lineChart struct {
	W, H                 int
	X0, Y0, PlotW, PlotH float64
	Series               []series
	XTicks, YTicks       []tick
	Max                  int
	Empty                bool
	Start                time.Time
	Step                 time.Duration
	BottomY, RightX      float64
}

// niceMax rounds a maximum up to 1, 2 or 5 × 10^k so grid lines land on
// round numbers, and returns the tick step.
func niceMax(v int) (int, int) {
	if v <= 0 {
		return 1, 1
	}
	mag := int(math.Pow(10, math.Floor(math.Log10(float64(v)))))
	for _, m := range []int{1, 2, 5, 10} {
		if v <= m*mag {
			top := m * mag
			step := top / 4
			if step == 0 {
				step = 1
			}
			return top, step
		}
	}
	return 10 * mag, 10 * mag / 4
}

func yTicks(top, step int, y0, plotH float64) []tick {
	var out []tick
	for v := 0; v <= top; v += step {
		out = append(out, tick{Pos: y0 + plotH - float64(v)/float64(top)*plotH, Label: strconv.Itoa(v)})
	}
	return out
}

// newLineChart lays out series of equal length starting at start, one
// value per step, with x labels every labelEvery.
func newLineChart(ss []series, start time.Time, step, labelEvery time.Duration) lineChart {
	c := lineChart{W: chartW, H: chartH, X0: padLeft, Y0: padTop, PlotW: chartW - padLeft - padRight, PlotH: chartH - padTop - padBot, Start: start, Step: step}
	c.BottomY, c.RightX = c.Y0+c.PlotH, c.X0+c.PlotW
	n := 0
	peak := 0
	for _, s := range ss {
		n = max(n, len(s.Values))
		for _, v := range s.Values {
			peak = max(peak, v)
		}
	}
	c.Empty = peak == 0
	top, ystep := niceMax(peak)
	c.Max = top
	c.YTicks = yTicks(top, ystep, c.Y0, c.PlotH)
	dx := c.PlotW / float64(max(n-1, 1))
	for i := range ss {
		var b strings.Builder
		for j, v := range ss[i].Values {
			if j > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", c.X0+float64(j)*dx, c.Y0+c.PlotH-float64(v)/float64(top)*c.PlotH)
		}
		ss[i].Points = b.String()
	}
	c.Series = ss
	// Label on round hours of the clock, not at offsets from start.
	first := start.Truncate(labelEvery)
	if first.Before(start) {
		first = first.Add(labelEvery)
	}
	end := start.Add(time.Duration(n-1) * step)
	for t := first; !t.After(end); t = t.Add(labelEvery) {
		c.XTicks = append(c.XTicks, tick{Pos: c.X0 + float64(t.Sub(start)/step)*dx, Label: t.UTC().Format("15:04")})
	}
	return c
}

// barChart is a stacked bar chart with one bar per label.
type barChart struct {
	W, H                 int
	X0, Y0, PlotW, PlotH float64
	BottomY, RightX      float64
	Bars                 []bar
	Legend               []legendItem
	YTicks               []tick
	Empty                bool
}

type bar struct {
	X, W   float64
	Label  string
	ShowX  bool // label this bar on the axis
	LabelX float64
	Total  int
	Segs   []segment
}

type segment struct {
	Y, H  float64
	Color string
	Title string
}

type legendItem struct {
	Name  string
	Color string
}

// newBarChart stacks counts[k][i] (series k, bar i).
func newBarChart(labels, names []string, counts [][]int) barChart {
	c := barChart{W: chartW, H: chartH, X0: padLeft, Y0: padTop, PlotW: chartW - padLeft - padRight, PlotH: chartH - padTop - padBot}
	c.BottomY, c.RightX = c.Y0+c.PlotH, c.X0+c.PlotW
	peak := 0
	for i := range labels {
		t := 0
		for k := range counts {
			t += counts[k][i]
		}
		peak = max(peak, t)
	}
	c.Empty = peak == 0
	top, ystep := niceMax(peak)
	c.YTicks = yTicks(top, ystep, c.Y0, c.PlotH)
	slot := c.PlotW / float64(max(len(labels), 1))
	colors := []string{"#009E73", "#999999", "#D55E00"}
	for k, n := range names {
		c.Legend = append(c.Legend, legendItem{Name: n, Color: colors[k%len(colors)]})
	}
	for i, l := range labels {
		b := bar{X: c.X0 + float64(i)*slot + slot*0.15, W: slot * 0.7, Label: l, ShowX: i%5 == 0 || i == len(labels)-1}
		b.LabelX = b.X + b.W/2
		y := c.Y0 + c.PlotH
		for k := range counts {
			v := counts[k][i]
			b.Total += v
			if v == 0 {
				continue
			}
			h := float64(v) / float64(top) * c.PlotH
			y -= h
			b.Segs = append(b.Segs, segment{Y: y, H: h, Color: colors[k%len(colors)], Title: fmt.Sprintf("%s: %d %s", l, v, names[k])})
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// sparkline is the points of a small line over values, in a w×h box.
func sparkline(values []int, w, h float64) string {
	peak := 1
	for _, v := range values {
		peak = max(peak, v)
	}
	dx := w / float64(max(len(values)-1, 1))
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", float64(i)*dx, h-1-float64(v)/float64(peak)*(h-2))
	}
	return b.String()
}
