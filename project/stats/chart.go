package stats

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// Charts are SVG written here, inline in the page: no script, no request
// of their own, readable by a screen reader from their title and a table
// of the same numbers beside them.

// chart draws values as bars, labelled below with the first, middle and
// last of labels, with a scale on the left.
func chart(title string, values []float64, labels []string, unit string) template.HTML {
	const (
		w, h          = 640, 180
		left, bottom  = 56, 22
		top, rightPad = 10, 6
	)
	top_ := 0.0
	for _, v := range values {
		top_ = max(top_, v)
	}
	step := niceStep(top_ / 4)
	scale := step * 4
	if scale == 0 {
		scale = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, w, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
	plotW, plotH := float64(w-left-rightPad), float64(h-top-bottom)
	for i := 0; i <= 4; i++ {
		y := float64(top) + plotH - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, left, w-rightPad, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, left-4, y+4, html.EscapeString(short(step*float64(i))))
	}
	if n := len(values); n > 0 {
		bw := plotW / float64(n)
		for i, v := range values {
			bh := plotH * v / scale
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="bar"><title>%s: %s %s</title></rect>`,
				float64(left)+bw*float64(i)+bw*0.1, float64(top)+plotH-bh, bw*0.8, bh, html.EscapeString(labels[i]), html.EscapeString(short(v)), html.EscapeString(unit))
		}
		for _, i := range []int{0, n / 2, n - 1} {
			anchor := "middle"
			if i == 0 {
				anchor = "start"
			} else if i == n-1 {
				anchor = "end"
			}
			x := float64(left) + bw*float64(i) + bw/2
			if i == 0 {
				x = float64(left)
			} else if i == n-1 {
				x = float64(w - rightPad)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="tick" text-anchor="%s">%s</text>`, x, h-6, anchor, html.EscapeString(labels[i]))
		}
	}
	b.WriteString(`</svg>`)
	// Everything in it was escaped above.
	return template.HTML(b.String())
}

// niceStep rounds a scale step up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// short writes a number in at most four digits and a suffix: 1.25k, 3.4M.
func short(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e15:
		return fmt.Sprintf("%.3gP", v/1e15)
	case a >= 1e12:
		return fmt.Sprintf("%.3gT", v/1e12)
	case a >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.3g", v)
}

// historyChart draws a credit history by day.
func historyChart(title string, ps []Point) template.HTML {
	values, labels := make([]float64, len(ps)), make([]string, len(ps))
	for i, p := range ps {
		values[i], labels[i] = p.Credit, p.Date
	}
	return chart(title, values, labels, "credit")
}
