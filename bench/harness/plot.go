package harness

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The plot (--plot FILE.svg): a self-contained SVG with two panels over
// the run's time — rates (offered, accepted, delivered per second) and
// accept latency percentiles (p50, p90, p99, p99.9, max; log scale) — that
// any browser opens. Each series is a <polyline> with id "series-NAME".

type series struct {
	name, color string
	value       func(sample) float64
}

var rateSeries = []series{
	{"offered", "#888888", func(s sample) float64 { return float64(s.Offered) }},
	{"accepted", "#1f77b4", func(s sample) float64 { return float64(s.Accepted) }},
	{"delivered", "#2ca02c", func(s sample) float64 { return float64(s.Delivered) }},
}

var latencySeries = []series{
	{"p50", "#2ca02c", func(s sample) float64 { return s.Accept.P50 }},
	{"p90", "#1f77b4", func(s sample) float64 { return s.Accept.P90 }},
	{"p99", "#ff7f0e", func(s sample) float64 { return s.Accept.P99 }},
	{"p99.9", "#d62728", func(s sample) float64 { return s.Accept.P999 }},
	{"max", "#9467bd", func(s sample) float64 { return s.Accept.Max }},
}

const (
	plotW, panelH     = 960, 300
	marginL, marginR  = 80, 130
	marginT, panelGap = 52, 70
)

// writePlot writes the SVG of tl, titled title.
func writePlot(w io.Writer, title string, tl []sample) error {
	var b strings.Builder
	height := marginT + 2*panelH + panelGap + 50
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">
<rect width="100%%" height="100%%" fill="white"/>
<text x="%d" y="18" font-size="14">%s</text>
`, plotW, height, plotW, height, marginL, html.EscapeString(title))
	tMax := 1.0
	for _, s := range tl {
		tMax = max(tMax, s.T)
	}
	// Rates: linear from 0.
	yMax := 1.0
	for _, s := range tl {
		for _, sr := range rateSeries {
			yMax = max(yMax, sr.value(s))
		}
	}
	yMax = niceCeil(yMax)
	top := float64(marginT)
	panel(&b, "messages per second", top, tMax, rateSeries, tl,
		func(v float64) (float64, bool) { return top + panelH*(1-v/yMax), true },
		linearTicks(yMax), func(v float64) string { return fmtCount(v) })
	// Latency: log10 from 0.01 ms (or less) up to the largest, in ms.
	lo, hi := math.Inf(1), 0.0
	for _, s := range tl {
		for _, sr := range latencySeries {
			if v := sr.value(s); v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 10
	}
	lgLo, lgHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if lgHi <= lgLo {
		lgHi = lgLo + 1
	}
	top2 := float64(marginT + panelH + panelGap)
	var ticks []float64
	for e := lgLo; e <= lgHi; e++ {
		ticks = append(ticks, math.Pow(10, e))
	}
	panel(&b, "accept latency (ms, log scale)", top2, tMax, latencySeries, tl,
		func(v float64) (float64, bool) {
			if v <= 0 {
				return 0, false
			}
			return top2 + panelH*(1-(math.Log10(v)-lgLo)/(lgHi-lgLo)), true
		},
		ticks, func(v float64) string { return fmtMS(v) })
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">seconds from the start of the load</text>
</svg>
`, marginL+(plotW-marginL-marginR)/2, height-12)
	_, err := io.WriteString(w, b.String())
	return err
}

// panel draws one panel: frame, grid with labels, time axis, and one
// polyline per series (a gap where y is undefined starts a new one).
func panel(b *strings.Builder, label string, top, tMax float64, ss []series, tl []sample,
	y func(float64) (float64, bool), ticks []float64, tickLabel func(float64) string) {
	left, right := float64(marginL), float64(plotW-marginR)
	x := func(t float64) float64 { return left + (right-left)*t/tMax }
	fmt.Fprintf(b, `<g class="panel"><text x="%.0f" y="%.0f" font-weight="bold">%s</text>
<rect x="%.0f" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#444"/>
`, left, top-8, html.EscapeString(label), left, top, right-left, panelH)
	for _, v := range ticks {
		if yy, ok := y(v); ok && yy >= top-0.5 && yy <= top+panelH+0.5 {
			fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>
`, left, yy, right, yy, left-6, yy+4, tickLabel(v))
		}
	}
	for _, t := range linearTicks(tMax) {
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>
`, x(t), top+panelH+16, fmtCount(t))
	}
	for i, s := range ss {
		fmt.Fprintf(b, `<g id="series-%s"><polyline fill="none" stroke="%s" stroke-width="1.6" points="`, s.name, s.color)
		open := true
		for _, smp := range tl {
			yy, ok := y(s.value(smp))
			if !ok {
				if open {
					continue
				}
				fmt.Fprintf(b, `"/><polyline fill="none" stroke="%s" stroke-width="1.6" points="`, s.color)
				open = true
				continue
			}
			fmt.Fprintf(b, "%.1f,%.1f ", x(smp.T), yy)
			open = false
		}
		fmt.Fprintf(b, `"/><rect x="%.0f" y="%.0f" width="14" height="4" fill="%s"/><text x="%.0f" y="%.0f">%s</text></g>
`, right+12, top+12+float64(i)*18, s.color, right+30, top+17+float64(i)*18, s.name)
	}
	b.WriteString("</g>\n")
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// linearTicks are about five round values from 0 to hi.
func linearTicks(hi float64) []float64 {
	step := niceCeil(hi / 5)
	var out []float64
	for v := 0.0; v <= hi+step/1e6; v += step {
		out = append(out, v)
	}
	return out
}

func fmtCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", v)
	}
}

func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%gs", v/1000)
	case v >= 1:
		return fmt.Sprintf("%gms", v)
	default:
		return fmt.Sprintf("%gµs", v*1000)
	}
}
