package trainer

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot sizes and resolution of the PNGs written by [WritePlots].
const (
	PlotWidth  = 6 * vg.Inch
	PlotHeight = 4 * vg.Inch
	PlotDPI    = 150
)

// WritePlots writes the comparison's PNG plots into dir:
//   - accuracy.png: test top-1 accuracy against epoch, one line per rule;
//   - loss.png: training loss against epoch, one line per rule;
//   - angles-<rule>.png and delta-angles-<rule>.png, for each rule other than bp with alignment records: the
//     weight angle ∠(B, Wᵀ) and the delta angle ∠(Bδ, Wᵀδ) against step, one line per layer.
//
// A plot with nothing to show is not written.
func WritePlots(dir string, c *Comparison) error {
	rules := comparisonRules(c)
	save := func(p *plot.Plot, name string) error {
		if p == nil {
			return nil
		}
		return SavePNG(p, filepath.Join(dir, name))
	}
	if err := save(AccuracyPlot(rules, c.Records), "accuracy.png"); err != nil {
		return err
	}
	if err := save(LossPlot(rules, c.Records), "loss.png"); err != nil {
		return err
	}
	for _, rule := range rules {
		if rule == "bp" {
			continue // B is Wᵀ: both angles are 0.
		}
		if err := save(AnglePlot(rule, c.Records[rule], false), "angles-"+rule+".png"); err != nil {
			return err
		}
		if err := save(AnglePlot(rule, c.Records[rule], true), "delta-angles-"+rule+".png"); err != nil {
			return err
		}
	}
	return nil
}

// SavePNG renders p as a PlotWidth×PlotHeight PNG at PlotDPI into path, with p's legend (if any) in a column to
// the right of the axes, where it hides no line.
func SavePNG(p *plot.Plot, path string) error {
	canvas := vgimg.NewWith(vgimg.UseWH(PlotWidth, PlotHeight), vgimg.UseDPI(PlotDPI))
	dc := draw.New(canvas)
	legend := p.Legend
	if width := legend.Rectangle(dc).Size().X; width > 0 {
		gap := vg.Points(10)
		p.Legend = plot.NewLegend()
		p.Draw(draw.Crop(dc, 0, -(width + 2*gap), 0, 0))
		p.Legend = legend
		legend.Top, legend.Left, legend.XOffs, legend.YOffs = true, true, 0, 0
		titleHeight := p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding
		legend.Draw(draw.Crop(dc, dc.Size().X-width-gap, 0, 0, -titleHeight-gap))
	} else {
		p.Draw(dc)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing plot %s: %w", path, err)
	}
	return nil
}

// niceTicks labels the axis at multiples of a round step (1, 2 or 5 × 10ᵏ; 15 or 30 for angles), about 5 to 10
// of them, with unlabelled minor ticks halfway.
type niceTicks struct{ degrees bool }

// Ticks implements plot.Ticker.
func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	if !(span > 0) || math.IsInf(span, 0) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	var step float64
	if t.degrees && span >= 45 && span <= 360 {
		step = 15
		if span > 150 {
			step = 30
		}
	} else {
		step = math.Pow(10, math.Floor(math.Log10(span)))
		for _, m := range []float64{0.1, 0.2, 0.5, 1} {
			if span/(m*step*10) <= 10 {
				step *= m * 10
				break
			}
		}
		if span/step < 4 {
			step /= 2
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step*2) * step / 2; v <= hi+step*1e-9; v += step / 2 {
		v := math.Round(v/step*2) * step / 2
		label := ""
		if r := math.Mod(math.Abs(v), step); r < step*1e-6 || step-r < step*1e-6 {
			label = strconv.FormatFloat(v, 'g', 6, 64)
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	return ticks
}

// newPlot creates a plot with a title, axis labels and a grid.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text, p.Y.Label.Text = x, y
	p.Add(plotter.NewGrid())
	p.Legend.Padding = vg.Points(2)
	p.Legend.ThumbnailWidth = vg.Points(20)
	p.Y.Tick.Marker = niceTicks{}
	return p
}

// addSeries adds one line (with points when it has few) to p, in the given colour, with a legend entry.
func addSeries(p *plot.Plot, label string, xys plotter.XYs, c color.Color, shape int, withPoints bool) {
	if len(xys) == 0 {
		return
	}
	line, err := plotter.NewLine(xys)
	if err != nil {
		return // Only NaNs and infinities fail, and they are filtered out.
	}
	line.Color, line.Width = c, vg.Points(1.5)
	if !withPoints && len(xys) > 1 {
		p.Add(line)
		p.Legend.Add(label, line)
		return
	}
	points, err := plotter.NewScatter(xys)
	if err != nil {
		return
	}
	points.Color, points.Shape, points.Radius = c, plotutil.Shape(shape), vg.Points(2.5)
	p.Add(line, points)
	p.Legend.Add(label, line, points)
}

func finite(x, y float64) bool {
	return !math.IsNaN(x) && !math.IsInf(x, 0) && !math.IsNaN(y) && !math.IsInf(y, 0)
}

// AccuracyPlot plots the test top-1 accuracy (%) against epoch, one line per rule, from the records that hold
// a test evaluation. It returns nil if there are none.
func AccuracyPlot(rules []string, records map[string][]Record) *plot.Plot {
	p := newPlot("Test top-1 accuracy", "epoch", "top-1 accuracy (%)")
	found := false
	for i, rule := range rules {
		var xys plotter.XYs
		for _, r := range records[rule] {
			if r.TestTop1 != nil && finite(r.Epoch, *r.TestTop1) {
				xys = append(xys, plotter.XY{X: r.Epoch, Y: 100 * *r.TestTop1})
			}
		}
		found = found || len(xys) > 0
		addSeries(p, rule, xys, plotutil.Color(i), i, len(xys) <= 30)
	}
	if !found {
		return nil
	}
	p.Y.Min = 0
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(4), vg.Points(4)
	p.X.Min = 0
	return p
}

// LossPlot plots the training loss against epoch, one line per rule (the step-0 record, before training, is
// left out), on a log scale when the losses span more than two orders of magnitude (a rule that diverges would
// flatten the others). It returns nil if there are no records.
func LossPlot(rules []string, records map[string][]Record) *plot.Plot {
	p := newPlot("Training loss", "epoch", "loss (last batch)")
	lo, hi := math.Inf(1), math.Inf(-1)
	all := map[string]plotter.XYs{}
	for _, rule := range rules {
		for _, r := range records[rule] {
			if r.Step > 0 && finite(r.Epoch, r.Loss) && r.Loss > 0 {
				all[rule] = append(all[rule], plotter.XY{X: r.Epoch, Y: r.Loss})
				lo, hi = math.Min(lo, r.Loss), math.Max(hi, r.Loss)
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	logScale := hi/lo > 100
	for i, rule := range rules {
		xys := all[rule]
		if logScale {
			// Plotted as log10(loss) on a linear axis labelled in decades: gonum's LogScale pads the axis oddly.
			xys = append(plotter.XYs(nil), xys...)
			for j := range xys {
				xys[j].Y = math.Log10(xys[j].Y)
			}
		}
		addSeries(p, rule, xys, plotutil.Color(i), i, len(xys) <= 30)
	}
	if logScale {
		p.Y.Tick.Marker = decadeTicks{}
		p.Y.Min, p.Y.Max = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		p.Y.Label.Text += ", log scale"
	} else {
		p.Y.Min = 0
	}
	p.X.Min = 0
	return p
}

// decadeTicks labels an axis of log10 values with the powers of ten they stand for, with minor ticks at 2…9 × 10ᵏ.
type decadeTicks struct{}

// Ticks implements plot.Ticker.
func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for k := math.Floor(lo); k <= hi; k++ {
		if k >= lo {
			ticks = append(ticks, plot.Tick{Value: k, Label: strconv.FormatFloat(math.Pow(10, k), 'g', -1, 64)})
		}
		for m := 2.0; m < 10; m++ {
			if v := k + math.Log10(m); v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v})
			}
		}
	}
	return ticks
}

// AnglePlot plots, for one rule, each layer's weight angle ∠(B, Wᵀ) (or, with delta, its delta angle
// ∠(Bδ, Wᵀδ)) in degrees against the training step, one line per layer coloured from the first layer (dark
// blue) to the last (yellow). With many layers the legend names every few. It returns nil if the records hold
// no alignment.
func AnglePlot(rule string, records []Record, delta bool) *plot.Plot {
	var order []string
	series := map[string]plotter.XYs{}
	for _, r := range records {
		for _, l := range r.Layers {
			v := l.WeightAngle
			if delta {
				v = l.DeltaAngle
			}
			if _, ok := series[l.Layer]; !ok {
				order = append(order, l.Layer)
				series[l.Layer] = plotter.XYs{}
			}
			if finite(float64(r.Step), v) {
				series[l.Layer] = append(series[l.Layer], plotter.XY{X: float64(r.Step), Y: v})
			}
		}
	}
	title, ylabel := "Angle between B and Wᵀ under "+rule, "weight angle (°)"
	if delta {
		title, ylabel = "Angle between Bδ and Wᵀδ under "+rule, "delta angle (°)"
	}
	p := newPlot(title, "training step", ylabel)
	p.Y.Tick.Marker = niceTicks{degrees: true}
	top := 0.0
	plotted := 0
	every := 1
	if len(order) > 12 {
		every = (len(order) + 7) / 8
	}
	for i, layer := range order {
		xys := series[layer]
		if len(xys) == 0 {
			continue
		}
		for _, xy := range xys {
			top = math.Max(top, xy.Y)
		}
		c := depthColor(i, len(order))
		line, err := plotter.NewLine(xys)
		if err != nil {
			continue
		}
		line.Color, line.Width = c, vg.Points(1.5)
		p.Add(line)
		plotted++
		if len(xys) == 1 {
			points, err := plotter.NewScatter(xys)
			if err == nil {
				points.Color, points.Radius = c, vg.Points(2.5)
				p.Add(points)
			}
		}
		if i%every == 0 || i == len(order)-1 {
			p.Legend.Add(ShortLayerName(layer), line)
		}
	}
	if plotted == 0 {
		return nil
	}
	// 0 to 90°, unless the angles go beyond: an angle's scale, whatever the rule.
	p.Y.Min, p.Y.Max = 0, math.Max(90, math.Ceil(top/15)*15)
	p.Legend.Top = true
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(4), -vg.Points(4)
	if len(order) > 12 {
		p.Legend.TextStyle.Font.Size = vg.Points(8)
	}
	return p
}

// depthColor runs from dark blue (the first of n layers) through teal and green to yellow (the last), as
// matplotlib's viridis does.
func depthColor(i, n int) color.Color {
	anchors := [][3]float64{{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}
	t := 0.0
	if n > 1 {
		t = float64(i) / float64(n-1) * 0.85 // stop short of the palest yellow
	}
	pos := t * float64(len(anchors)-1)
	k := min(int(pos), len(anchors)-2)
	f := pos - float64(k)
	a, b := anchors[k], anchors[k+1]
	mix := func(j int) uint8 { return uint8(math.Round(a[j] + f*(b[j]-a[j]))) }
	return color.RGBA{R: mix(0), G: mix(1), B: mix(2), A: 255}
}
