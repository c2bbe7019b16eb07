package trainer

import "math"

// Schedule gives the learning rate of each training step.
type Schedule struct {
	// Base is the peak learning rate.
	Base float64
	// Kind is "constant", "step" or "cosine".
	Kind string
	// Milestones (in steps) at which "step" multiplies the rate by Gamma.
	Milestones []int
	Gamma      float64
	// WarmupSteps of linear warm-up from Base/WarmupSteps to Base.
	WarmupSteps int
	// TotalSteps of the run (cosine reaches zero there).
	TotalSteps int
}

// newSchedule converts the configuration's epochs into steps.
func newSchedule(c Config, stepsPerEpoch, totalSteps int) Schedule {
	s := Schedule{Base: c.LearningRate, Kind: c.Schedule, Gamma: c.Gamma, TotalSteps: totalSteps,
		WarmupSteps: int(math.Round(c.WarmupEpochs * float64(stepsPerEpoch)))}
	for _, m := range c.Milestones {
		s.Milestones = append(s.Milestones, int(math.Round(m*float64(stepsPerEpoch))))
	}
	return s
}

// At returns the learning rate of the step with the given 0-based index.
func (s Schedule) At(step int) float64 {
	if step < s.WarmupSteps {
		return s.Base * float64(step+1) / float64(s.WarmupSteps)
	}
	switch s.Kind {
	case "step":
		lr := s.Base
		for _, m := range s.Milestones {
			if step >= m {
				lr *= s.Gamma
			}
		}
		return lr
	case "cosine":
		span := s.TotalSteps - s.WarmupSteps
		if span <= 0 {
			return s.Base
		}
		progress := float64(step-s.WarmupSteps) / float64(span)
		return s.Base * 0.5 * (1 + math.Cos(math.Pi*math.Min(progress, 1)))
	default:
		return s.Base
	}
}
