package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/nowt-ml/nowt/trainer"

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

// heatMapLayers is the number of layers beyond which a rule's angles are drawn as a layer × step heat map
// rather than one line per layer.
const heatMapLayers = 8

// WritePlots writes the comparison's PNG plots into dir:
//   - test-error.png: test error (100 − top-1, %) against epoch on a log axis, one line per rule;
//   - test-loss.png: test loss against epoch, one line per rule;
//   - gradient-norm.png: the training steps' gradient norm before clipping against epoch, one line per rule
//     (runs logged before nowt recorded it have none);
//   - final-angles.png: the final weight angle ∠(B, Wᵀ) of every layer, one bar per rule (undefined angles
//     marked);
//   - angles-<rule>.png and delta-angles-<rule>.png, for each rule other than bp with alignment records: the
//     weight angle and the delta angle ∠(Bδ, Wᵀδ) against step, one line per layer, or with more than 8 layers
//     a layer × step heat map; the weight mirror's warm-up is drawn before step 0.
//
// A plot with nothing to show is not written.
func WritePlots(dir string, c *trainer.Comparison) error {
	if c == nil {
		return fmt.Errorf("report.WritePlots %s: nothing to plot (nil comparison)", dir)
	}
	rules := rulesOf(c)
	save := func(p *plot.Plot, name string) error {
		if p == nil {
			return nil
		}
		return SavePNG(p, filepath.Join(dir, name))
	}
	if err := save(ErrorPlot(rules, c.Records), "test-error.png"); err != nil {
		return err
	}
	if err := save(TestLossPlot(rules, c.Records), "test-loss.png"); err != nil {
		return err
	}
	if err := save(GradientNormPlot(rules, c.Records), GradientNormPlotFileName); err != nil {
		return err
	}
	if err := save(FinalAnglesPlot(rules, c.Records), "final-angles.png"); err != nil {
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
	if p == nil {
		return fmt.Errorf("report.SavePNG %s: nil plot", path)
	}
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
		if v == 0 {
			v = 0 // not −0
		}
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

// ErrorPlot plots the test error (100 − top-1, in %) against epoch on a log axis, one line per rule, from the
// records that hold a test evaluation: on a log axis 2 % and 3 % are as far apart as 20 % and 30 %. It returns
// nil if there are none.
func ErrorPlot(rules []string, records map[string][]trainer.Record) *plot.Plot {
	p := newPlot("Test error", "epoch", "test error (100 − top-1, %), log scale")
	lo, hi := math.Inf(1), math.Inf(-1)
	series := map[string]plotter.XYs{}
	for _, rule := range rules {
		for _, r := range records[rule] {
			if r.TestTop1 == nil || r.WarmupMirrorSteps != nil {
				continue
			}
			e := 100 * (1 - *r.TestTop1)
			if finite(r.Epoch, e) && e > 0 {
				series[rule] = append(series[rule], plotter.XY{X: r.Epoch, Y: math.Log10(e)})
				lo, hi = math.Min(lo, e), math.Max(hi, e)
			}
		}
	}
	if len(series) == 0 {
		return nil
	}
	for i, rule := range rules {
		addSeries(p, rule, series[rule], plotutil.Color(i), i, len(series[rule]) <= 30)
	}
	p.Y.Tick.Marker = decadeTicks{}
	p.Y.Min, p.Y.Max = math.Log10(lo)-0.05, math.Log10(hi)+0.05
	p.X.Min = 0
	return p
}

// TestLossPlot plots the test loss (the mean over the test set, without regularisation) against epoch, one line
// per rule, on a log scale when the losses span more than one order of magnitude (the first evaluations, or a
// rule that diverges, would flatten the others). It returns nil if no record holds a test loss.
func TestLossPlot(rules []string, records map[string][]trainer.Record) *plot.Plot {
	return epochLinesPlot("Test loss", "test loss", rules, records, func(r trainer.Record) float64 {
		if r.TestLoss == nil {
			return math.NaN()
		}
		return *r.TestLoss
	})
}

// GradientNormPlot plots the training steps' global gradient norm ‖g‖ before any clipping (each record's mean
// since the previous record) against epoch, one line per rule, on a log scale when the norms span more than
// one order of magnitude: where a rule's steps grow, and what -clip-norm would bound. It returns nil if no
// record holds a gradient norm (logs made before nowt recorded them).
func GradientNormPlot(rules []string, records map[string][]trainer.Record) *plot.Plot {
	return epochLinesPlot("Gradient norm before clipping", "‖g‖, mean between records", rules, records,
		func(r trainer.Record) float64 { return r.GradientNorm })
}

// epochLinesPlot plots value (NaN or ≤ 0 where a record holds none) against epoch, one line per rule, leaving
// out the weight mirror's warm-up records; on a log scale when the values span more than one order of
// magnitude. It returns nil if no record holds a value.
func epochLinesPlot(title, ylabel string, rules []string, records map[string][]trainer.Record,
	value func(trainer.Record) float64) *plot.Plot {
	p := newPlot(title, "epoch", ylabel)
	lo, hi := math.Inf(1), math.Inf(-1)
	all := map[string]plotter.XYs{}
	for _, rule := range rules {
		for _, r := range records[rule] {
			if y := value(r); r.WarmupMirrorSteps == nil && finite(r.Epoch, y) && y > 0 {
				all[rule] = append(all[rule], plotter.XY{X: r.Epoch, Y: y})
				lo, hi = math.Min(lo, y), math.Max(hi, y)
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	logScale := hi/lo > 10
	for i, rule := range rules {
		xys := all[rule]
		if logScale {
			// Plotted as log10(value) on a linear axis labelled in decades: gonum's LogScale pads the axis oddly.
			xys = append(plotter.XYs(nil), xys...)
			for j := range xys {
				xys[j].Y = math.Log10(xys[j].Y)
			}
		}
		addSeries(p, rule, xys, plotutil.Color(i), i, len(xys) <= 30)
	}
	if logScale {
		p.Y.Tick.Marker = decadeTicks{}
		p.Y.Min, p.Y.Max = math.Log10(lo)-0.05, math.Log10(hi)+0.05
		p.Y.Label.Text += ", log scale"
	} else {
		p.Y.Min = 0
	}
	p.X.Min = 0
	return p
}

// undefinedColor marks undefined angles (a zero vector on one side) in the plots.
var undefinedColor = color.RGBA{R: 190, G: 190, B: 190, A: 255}

// FinalAnglesPlot draws, for every layer, the final weight angle ∠(B, Wᵀ) of each rule as a bar (bp, at 0° by
// construction, is left out); an undefined angle is a cross in the rule's colour at the foot of its slot (a black
// one in the legend), not a bar of 0°.
// It returns nil if no rule but bp has alignment records.
func FinalAnglesPlot(rules []string, records map[string][]trainer.Record) *plot.Plot {
	var shown []int // indices into rules
	finals := map[string]trainer.Summary{}
	var layers []string
	seen := map[string]bool{}
	for i, rule := range rules {
		s := trainer.Summarize(records[rule])
		if rule == "bp" || len(s.Layers) == 0 {
			continue
		}
		shown = append(shown, i)
		finals[rule] = s
		for _, l := range s.Layers {
			if !seen[l.Layer] {
				seen[l.Layer] = true
				layers = append(layers, l.Layer)
			}
		}
	}
	if len(shown) == 0 {
		return nil
	}
	p := newPlot("Final weight angle per layer", "layer", "angle between B and Wᵀ (°)")
	p.Y.Tick.Marker = niceTicks{degrees: true}
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = ShortLayerName(l)
	}
	p.NominalX(names...)
	if len(layers) > 6 {
		p.X.Tick.Label.Rotation = math.Pi / 3
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
		p.X.Tick.Label.Font.Size = vg.Points(7)
	}
	slot := vg.Points(math.Max(3, math.Min(120, 330/float64(len(layers)))))
	width := slot * 0.85 / vg.Length(len(shown))
	top := 90.0
	undefinedShown := false
	for k, i := range shown {
		rule := rules[i]
		values := make(plotter.Values, len(layers))
		var undefined plotter.XYs
		for j, l := range layers {
			if a, ok := finals[rule].Layer(l); ok && a.WeightAngle != nil {
				values[j] = *a.WeightAngle
				top = math.Max(top, *a.WeightAngle)
			} else if ok {
				undefined = append(undefined, plotter.XY{X: float64(j), Y: 3})
			}
		}
		bars, err := plotter.NewBarChart(values, width)
		if err != nil {
			continue
		}
		bars.Color, bars.LineStyle.Width = plotutil.Color(i), 0
		bars.Offset = (vg.Length(k) - vg.Length(len(shown)-1)/2) * width
		p.Add(bars)
		p.Legend.Add(rule, bars)
		if marks, err := plotter.NewScatter(undefined); err == nil && len(undefined) > 0 {
			marks.Shape, marks.Color, marks.Radius = draw.CrossGlyph{}, plotutil.Color(i), vg.Points(4)
			p.Add(marks)
			if !undefinedShown {
				undefinedShown = true
				legendMark := *marks
				legendMark.Color = color.Black
				p.Legend.Add("undefined", &legendMark)
			}
		}
	}
	p.Y.Min, p.Y.Max = 0, math.Ceil(top/15)*15
	p.X.Min, p.X.Max = -0.5, float64(len(layers))-0.5
	return p
}

// decadeTicks labels an axis of log10 values with the powers of ten they stand for, with minor ticks at 2…9 × 10ᵏ
// (2 and 5 × 10ᵏ labelled when the axis spans under two decades, every one under one decade, where a power of
// ten, 2× or 5× may be one label or none).
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
				label := ""
				if (m == 2 || m == 5) && hi-lo < 2 || hi-lo < 1 { // Few decades: label 2 and 5 × 10ᵏ too, or all.
					label = strconv.FormatFloat(m*math.Pow(10, k), 'g', -1, 64)
				}
				ticks = append(ticks, plot.Tick{Value: v, Label: label})
			}
		}
	}
	return ticks
}

// angleSeries collects, per layer in order of first appearance, the weight (or delta) angle against the step;
// the records of the weight mirror's warm-up go before step 0, one unit per warm-up mirror step. Undefined
// angles are NaN.
func angleSeries(records []trainer.Record, delta bool) (order []string, series map[string]plotter.XYs, warmup bool) {
	series = map[string]plotter.XYs{}
	warmupTotal := 0
	for _, r := range records {
		if r.WarmupMirrorSteps != nil {
			warmupTotal = max(warmupTotal, *r.WarmupMirrorSteps)
		}
	}
	for _, r := range records {
		x := float64(r.Step)
		if r.WarmupMirrorSteps != nil {
			x = float64(*r.WarmupMirrorSteps - warmupTotal)
			warmup = true
		} else if warmupTotal > 0 && r.Step == 0 {
			continue // The same state as the warm-up's last record.
		}
		for _, l := range r.Layers {
			v := l.WeightAngle
			if delta {
				v = l.DeltaAngle
			}
			if _, ok := series[l.Layer]; !ok {
				order = append(order, l.Layer)
			}
			y := math.NaN()
			if v != nil {
				y = *v
			}
			if delta && v == nil && l.DeltaStatus() == "not measured" {
				continue
			}
			series[l.Layer] = append(series[l.Layer], plotter.XY{X: x, Y: y})
		}
	}
	return order, series, warmup
}

// AnglePlot plots, for one rule, each layer's weight angle ∠(B, Wᵀ) (or, with delta, its delta angle
// ∠(Bδ, Wᵀδ)) in degrees against the training step: with up to 8 layers one line per layer coloured from the
// first layer (dark blue) to the last (yellow), undefined angles as crosses along the top; with more, a layer ×
// step heat map with undefined cells grey. The weight mirror's warm-up, if recorded, is drawn before step 0 (in
// mirror steps). It returns nil if the records hold no alignment.
func AnglePlot(rule string, records []trainer.Record, delta bool) *plot.Plot {
	order, series, warmup := angleSeries(records, delta)
	title, ylabel := "Angle between B and Wᵀ under "+rule, "weight angle (°)"
	if delta {
		title, ylabel = "Angle between Bδ and Wᵀδ under "+rule, "delta angle (°)"
	}
	xlabel := "training step"
	if warmup {
		xlabel = "training step (before 0: the mirror's warm-up, in mirror steps)"
	}
	points := 0
	top := 0.0
	for _, xys := range series {
		for _, xy := range xys {
			points++
			if !math.IsNaN(xy.Y) {
				top = math.Max(top, xy.Y)
			}
		}
	}
	if points == 0 {
		return nil
	}
	top = math.Max(90, math.Ceil(top/15)*15)
	if len(order) > heatMapLayers {
		return angleHeatMap(title, xlabel, order, series, top)
	}
	p := newPlot(title, xlabel, ylabel)
	p.Y.Tick.Marker = niceTicks{degrees: true}
	var undefinedMark *plotter.Scatter // legend entry for the undefined angles, after the layers
	for i, layer := range order {
		var defined, undefined plotter.XYs
		for _, xy := range series[layer] {
			if math.IsNaN(xy.Y) {
				undefined = append(undefined, plotter.XY{X: xy.X, Y: top})
			} else {
				defined = append(defined, xy)
			}
		}
		c := depthColor(i, len(order))
		if len(defined) > 0 {
			line, err := plotter.NewLine(defined)
			if err == nil {
				line.Color, line.Width = c, vg.Points(1.5)
				p.Add(line)
				p.Legend.Add(ShortLayerName(layer), line)
				if len(defined) == 1 {
					if pts, err := plotter.NewScatter(defined); err == nil {
						pts.Color, pts.Radius = c, vg.Points(2.5)
						p.Add(pts)
					}
				}
			}
		}
		if len(undefined) > 0 {
			if marks, err := plotter.NewScatter(undefined); err == nil {
				marks.Shape, marks.Color, marks.Radius = draw.CrossGlyph{}, c, vg.Points(3)
				p.Add(marks)
				if len(defined) == 0 {
					p.Legend.Add(ShortLayerName(layer), marks)
				}
				if undefinedMark == nil {
					legendMark := *marks
					legendMark.Color = color.Black
					undefinedMark = &legendMark
				}
			}
		}
	}
	if undefinedMark != nil {
		p.Legend.Add("undefined", undefinedMark)
	}
	// 0 to 90°, unless the angles go beyond: an angle's scale, whatever the rule.
	p.Y.Min, p.Y.Max = 0, top
	p.X.Tick.Marker = niceTicks{}
	return p
}

// layerGrid is a layer × record grid of angles for plotter.HeatMap: column c is the c-th step, row r the r-th
// layer from the last (so that the first layer is drawn at the top).
type layerGrid struct {
	steps  []float64
	values [][]float64 // [layer][column]
}

func (g layerGrid) Dims() (c, r int)   { return len(g.steps), len(g.values) }
func (g layerGrid) Z(c, r int) float64 { return g.values[len(g.values)-1-r][c] }
func (g layerGrid) X(c int) float64    { return g.steps[c] }
func (g layerGrid) Y(r int) float64    { return float64(r) }

// layerTicks labels the rows of a layerGrid with the layers' short names.
type layerTicks []string

// Ticks implements plot.Ticker.
func (t layerTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := make([]plot.Tick, len(t))
	for i, name := range t {
		ticks[i] = plot.Tick{Value: float64(len(t) - 1 - i), Label: name}
	}
	return ticks
}

// swatch is a legend thumbnail filled with one colour.
type swatch struct{ color.Color }

// Thumbnail implements plot.Thumbnailer.
func (s swatch) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(s.Color, c.ClipPolygonY(pts))
}

// angleHeatMap draws series (one per layer) as a layer × step heat map from 0° (dark) to top (light), with a
// legend of colour swatches every 15° and grey for undefined.
func angleHeatMap(title, xlabel string, order []string, series map[string]plotter.XYs, top float64) *plot.Plot {
	stepIndex := map[float64]int{}
	var steps []float64
	for _, layer := range order {
		for _, xy := range series[layer] {
			if _, ok := stepIndex[xy.X]; !ok {
				stepIndex[xy.X] = len(steps)
				steps = append(steps, xy.X)
			}
		}
	}
	sort.Float64s(steps)
	for i, s := range steps {
		stepIndex[s] = i
	}
	g := layerGrid{steps: steps, values: make([][]float64, len(order))}
	names := make([]string, len(order))
	for i, layer := range order {
		names[i] = ShortLayerName(layer)
		row := make([]float64, len(steps))
		for j := range row {
			row[j] = math.NaN()
		}
		for _, xy := range series[layer] {
			row[stepIndex[xy.X]] = xy.Y
		}
		g.values[i] = row
	}
	p := newPlot(title, xlabel, "")
	p.Y.Tick.Marker = layerTicks(names)
	p.Y.Tick.Label.Font.Size = vg.Points(7)
	colors := make([]color.Color, 64)
	for i := range colors {
		colors[i] = depthColor(i, len(colors))
	}
	h := plotter.NewHeatMap(g, angleColors(colors))
	h.Min, h.Max, h.NaN = 0, top, undefinedColor
	p.Add(h)
	for v := 0.0; v <= top; v += 15 {
		p.Legend.Add(fmt.Sprintf("%.0f°", v), swatch{colors[min(len(colors)-1, int(v/top*float64(len(colors)-1)+0.5))]})
	}
	p.Legend.Add("undefined", swatch{undefinedColor})
	if steps[0] < 0 { // The warm-up's end, the start of training.
		if start, err := plotter.NewLine(plotter.XYs{{X: 0, Y: -0.5}, {X: 0, Y: float64(len(order)) - 0.5}}); err == nil {
			start.Color, start.Width = color.White, vg.Points(1.5)
			p.Add(start)
		}
	}
	p.X.Tick.Marker = niceTicks{}
	return p
}

// angleColors is a palette.Palette.
type angleColors []color.Color

// Colors implements palette.Palette.
func (a angleColors) Colors() []color.Color { return a }

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
