package trainer

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// formatRecord is the one-line report of a metrics record, used when the progress bar is off.
func formatRecord(r Record) string {
	var s string
	if r.Step == 0 { // Nothing trained yet: no loss, accuracy nor speed to report.
		s = fmt.Sprintf("step %6d  epoch %6.2f  (start)  lr %.4g", r.Step, r.Epoch, r.LearningRate)
	} else {
		s = fmt.Sprintf("step %6d  epoch %6.2f  loss %.4f  train-acc %.4f  lr %.4g  %.0f img/s",
			r.Step, r.Epoch, r.Loss, r.TrainAccuracy, r.LearningRate, r.ImagesPerSecond)
		if r.GradientNormMax > 0 {
			s += fmt.Sprintf("  |g| %.3g (max %.3g)", r.GradientNorm, r.GradientNormMax)
		}
		if r.ClippedFraction != nil {
			s += fmt.Sprintf("  clipped %.0f%%", 100**r.ClippedFraction)
		}
	}
	if r.TestTop1 != nil {
		s += fmt.Sprintf("  test top-1 %.4f top-5 %.4f", *r.TestTop1, *r.TestTop5)
	}
	if r.SkippedImages > 0 {
		s += "  skipped " + unreadableImages(r.SkippedImages)
	}
	return s
}

// WriteSummary prints the run's final accuracy and per-layer alignment as a table.
func WriteSummary(w io.Writer, res *Result) error {
	if res == nil {
		return fmt.Errorf("trainer.WriteSummary: nil result (Train returns one with a nil error, and with some errors)")
	}
	c := res.Config
	fmt.Fprintf(w, "\n%s on %s under rule %s: %d steps (%.2f epochs) in %s\n", c.Model, c.Dataset, c.Rule,
		res.Steps, res.Epochs, res.Duration.Round(1e8))
	fmt.Fprintf(w, "test top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (best top-1 %.2f%%)\n",
		100*res.TestTop1, 100*res.TestTop5, res.TestLoss, 100*res.BestTestTop1)
	if len(res.Layers) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "layer\tweight angle (°)\tdelta angle (°)\tgradient angle (°)\t‖W‖\t‖B‖/‖W‖\t")
		for _, l := range res.Layers {
			weight := "undefined"
			if l.WeightAngle != nil {
				weight = fmt.Sprintf("%.2f", *l.WeightAngle)
			}
			delta := l.DeltaStatus()
			if l.DeltaAngle != nil {
				delta = fmt.Sprintf("%.2f", *l.DeltaAngle)
				if l.DeltaUndefined > 0 {
					delta += fmt.Sprintf(" (%d examples undefined)", l.DeltaUndefined)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", l.Layer, weight, delta, orDash(l.GradientAngle, "%.2f"),
				orDash(l.WeightNorm, "%.3f"), orDash(l.NormRatio, "%.3f"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if res.AtChance != nil {
		fmt.Fprintf(w, "the run %s\n", res.AtChance)
	}
	if e := res.CheckpointAtChance; e != nil {
		fmt.Fprintf(w, "this checkpoint (step %d) is at chance (%.2f %%, %d classes): its network predicts no better than "+
			"the test set's most frequent class", e.Since, 100*e.Chance, e.Classes)
		if e.Collapsed() {
			fmt.Fprintf(w, "; the run had reached %.2f %% at step %d: it collapsed after that", 100*e.Best, e.BestStep)
		}
		fmt.Fprintln(w)
	}
	if res.SkippedImages > 0 {
		fmt.Fprintf(w, "skipped %s (named in the warnings; nowt check lists them)\n", unreadableImages(res.SkippedImages))
	}
	if res.Checkpoint != "" {
		fmt.Fprintf(w, "checkpoint: %s\n", res.Checkpoint)
	}
	return nil
}

// Summary is what a run's metrics log says at its end: what results tables and summaries report of a run.
type Summary struct {
	// Steps and Epochs of the last record.
	Steps  int
	Epochs float64
	// Final is the last record with test metrics (nil if none); Best the best test top-1 (NaN if none).
	Final *Record
	Best  float64
	// Evaluations counts the records with test metrics.
	Evaluations int
	// Layers is the alignment of the last record that has one.
	Layers []LayerAlignment
}

// Summarize summarises a run's records (in the order of its metrics log).
func Summarize(records []Record) Summary {
	s := Summary{Best: math.NaN()}
	for i := range records {
		r := &records[i]
		if r.Step >= s.Steps {
			s.Steps, s.Epochs = r.Step, r.Epoch
		}
		if r.TestTop1 != nil {
			s.Final = r
			s.Evaluations++
			if math.IsNaN(s.Best) || *r.TestTop1 > s.Best {
				s.Best = *r.TestTop1
			}
		}
		if len(r.Layers) > 0 {
			s.Layers = r.Layers
		}
	}
	return s
}

// Layer returns the alignment of the layer with the given scope in s, if any.
func (s Summary) Layer(scope string) (LayerAlignment, bool) {
	for _, l := range s.Layers {
		if l.Layer == scope {
			return l, true
		}
	}
	return LayerAlignment{}, false
}

// orDash formats *p with format, or returns "-" where p is nil (not measured, or not a finite number).
func orDash(p *float64, format string) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf(format, *p)
}

// unreadableImages counts n unreadable images in words: "1 unreadable image", "3 unreadable images".
func unreadableImages(n int) string {
	if n == 1 {
		return "1 unreadable image"
	}
	return fmt.Sprintf("%d unreadable images", n)
}
