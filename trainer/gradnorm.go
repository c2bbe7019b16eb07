package trainer

import "math"

// normStats gathers the training steps' global gradient norms between two records.
type normStats struct {
	sum, max float64
	steps    int
	clipped  int // steps whose norm exceeded the clip bound
}

// add counts one step's gradient norm; clip is the run's ClipNorm (0: no clipping).
func (s *normStats) add(norm, clip float64) {
	s.sum += norm
	s.max = math.Max(s.max, norm)
	s.steps++
	if clip > 0 && norm > clip {
		s.clipped++
	}
}

// fill sets rec's gradient-norm fields from the steps counted; a record with no step counted since the
// previous one (step 0) gets none.
func (s *normStats) fill(rec *Record, clip float64) {
	if s.steps == 0 {
		return
	}
	rec.GradientNorm, rec.GradientNormMax = s.sum/float64(s.steps), s.max
	if clip > 0 {
		fraction := float64(s.clipped) / float64(s.steps)
		rec.ClippedFraction = &fraction
	}
}
