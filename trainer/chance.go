package trainer

import (
	"fmt"
	"math"

	"github.com/nowt-ml/nowt/input"
)

// A run can fail without its loss growing: its network collapses to a constant (or uniform) prediction, its test
// top-1 falls to chance and stays there while the loss sits near ln(classes). The divergence guard cannot see
// that (the loss does not grow), so the trainer warns when a run falls to chance after it had learned (and, with
// Config.ChanceGuard, stops it: [CollapseError]), and the reports say which runs ended at chance ([EndedAtChance]).

const (
	// chanceMargin is how far above chance level a test top-1 may be and still count as at chance, as a share of
	// the way from chance to 100 %: 11.8 % where chance is 10 %, 2.1 % where it is 0.1 % — or 3 times the spread
	// of a guessing network's top-1 on the test set, where that is more (see [chanceThresholds]).
	chanceMargin = 0.02
	// learnedMargin is how far above chance a test top-1 must be for the run to have learned something, in the same
	// share: 19 % where chance is 10 %, 10.1 % where it is 0.1 % — or 6 times that spread, where that is more.
	learnedMargin = 0.1
)

// chanceThresholds returns the test top-1s at or under which a run is at chance level chance, and at or over
// which it has learned, on a test set of testExamples images (0: unknown). A network no better than chance has a
// top-1 spread of sd = √(chance·(1−chance)/n) on n images (0.3 points on 10,000 images at 10 %, 2.1 on 256 at
// 13.7 %): the thresholds are chance + max(2 % of the way to 100 %, 3 sd) and chance + max(10 %, 6 sd), so that
// a small test set's noise reads neither as a collapse nor as learning.
func chanceThresholds(chance float64, testExamples int) (atChance, learned float64) {
	sd := 0.0
	if testExamples > 0 {
		sd = math.Sqrt(chance * (1 - chance) / float64(testExamples))
	}
	return chance + max(chanceMargin*(1-chance), 3*sd), chance + max(learnedMargin*(1-chance), 6*sd)
}

// MajorityTop1 is the test top-1 of a network that ignores its input and predicts the most frequent class for
// every image: that class's share of the test examples (counts per class), 1/classes on a balanced test set. It
// is the chance level of a run. 0 for no examples.
func MajorityTop1(counts []int) float64 {
	total, most := 0, 0
	for _, c := range counts {
		total += c
		most = max(most, c)
	}
	if total == 0 {
		return 0
	}
	return float64(most) / float64(total)
}

// IsAtChance reports whether a test top-1 (a fraction) on a test set of testExamples images (0: unknown) is at
// chance level (chance, see [MajorityTop1]): within 2 % of the way from chance to 1, or 3 times a guessing
// network's spread on that many images ([chanceThresholds]). False where chance is unknown (≤ 0 or ≥ 1: a single
// class) or top1 is NaN, and where the test set is too small to tell (3 sd reach 100 %: 3 images at chance
// 33 %, where even a perfect top-1 would read as chance).
func IsAtChance(top1, chance float64, testExamples int) bool {
	if !(chance > 0 && chance < 1) || math.IsNaN(top1) {
		return false
	}
	atChance, _ := chanceThresholds(chance, testExamples)
	return top1 <= atChance && atChance < 1
}

// hasLearned reports whether a test top-1 is clearly above chance level: at least 10 % of the way from chance
// to 1, and 6 times a guessing network's spread on the test set.
func hasLearned(top1, chance float64, testExamples int) bool {
	if !(chance > 0 && chance < 1) || math.IsNaN(top1) {
		return false
	}
	_, learned := chanceThresholds(chance, testExamples)
	return top1 >= learned
}

// ChanceEnding describes a run whose test evaluations were at chance level from some step to its last one.
type ChanceEnding struct {
	// Chance is the run's chance level (a fraction, see [MajorityTop1]); Classes its number of classes and
	// TestExamples the size of its test set (0: unknown, a log from before nowt recorded it).
	Chance       float64 `json:"chance"`
	Classes      int     `json:"classes"`
	TestExamples int     `json:"test_examples,omitempty"`
	// Since is the step of the first of the evaluations at chance that end the run (0 when it never left chance).
	Since int `json:"since"`
	// Final is the last test top-1, Best the best one of the run (fractions), at step BestStep.
	Final    float64 `json:"final"`
	Best     float64 `json:"best"`
	BestStep int     `json:"best_step"`
}

// Collapsed reports whether the run had learned before it fell to chance (its best test top-1 clearly above
// chance), rather than never leaving chance.
func (e ChanceEnding) Collapsed() bool { return hasLearned(e.Best, e.Chance, e.TestExamples) }

// String describes the ending in words, e.g. "collapsed to chance (10.00 %, 10 classes) at step 94 and stayed
// there, after 30.60 % at step 47".
func (e ChanceEnding) String() string {
	level := fmt.Sprintf("chance (%.2f %%, %d classes)", 100*e.Chance, e.Classes)
	if e.Collapsed() {
		return fmt.Sprintf("collapsed to %s at step %d and stayed there, after %.2f %% at step %d", level, e.Since,
			100*e.Best, e.BestStep)
	}
	return fmt.Sprintf("ended at %s, never clearly above it: best test top-1 %.2f %% at step %d", level, 100*e.Best,
		e.BestStep)
}

// EndedAtChance reports whether a run's last test evaluation is at chance level ([IsAtChance]) and, if so, since
// which step, and its best top-1. A run evaluated only before its first step (one stopped early) is not reported:
// every untrained network is at chance. cfg is the run's configuration. The chance level comes from the run's starting
// record ([Record.ChanceTop1]) or, for logs made before nowt recorded it, from its dataset: 1/classes for a
// dataset whose number of classes is fixed ([input.KnownClasses]). Runs on synthetic data are never reported:
// their test labels are random, so chance is the most any network can reach on them.
func EndedAtChance(cfg *Config, records []Record) (ChanceEnding, bool) {
	chance, classes, testExamples := chanceLevel(cfg, records)
	if !(chance > 0 && chance < 1) {
		return ChanceEnding{}, false
	}
	e := ChanceEnding{Chance: chance, Classes: classes, TestExamples: testExamples, Best: math.NaN(), Since: -1}
	trained := false // an evaluation after the first step: the starting one, of the untrained network, says nothing
	for _, r := range records {
		if r.TestTop1 == nil {
			continue
		}
		trained = trained || r.Step > 0
		top1 := *r.TestTop1
		if math.IsNaN(e.Best) || top1 > e.Best {
			e.Best, e.BestStep = top1, r.Step
		}
		switch {
		case !IsAtChance(top1, chance, testExamples):
			e.Since = -1
		case e.Since < 0:
			e.Since = r.Step
		}
		e.Final = top1
	}
	if e.Since < 0 || !trained {
		return ChanceEnding{}, false
	}
	return e, true
}

// chanceLevel is the chance level, number of classes and test-set size of a run: from its starting record, else
// from its dataset's name (the size unknown; all 0 if the classes are unknown, and for synthetic data).
func chanceLevel(cfg *Config, records []Record) (chance float64, classes, testExamples int) {
	if cfg != nil && cfg.Dataset == "synthetic" {
		return 0, 0, 0
	}
	for _, r := range records {
		if r.ChanceTop1 > 0 {
			return r.ChanceTop1, r.Classes, r.TestExamples
		}
	}
	if cfg == nil {
		return 0, 0, 0
	}
	if classes = input.KnownClasses(cfg.Dataset); classes > 0 {
		return 1 / float64(classes), classes, 0
	}
	return 0, 0, 0
}

// chanceWatch follows a run's test evaluations: it warns once per invocation when the test top-1 falls to chance
// after the run had learned, and counts the evaluations at chance in a row since, for -chance-guard.
type chanceWatch struct {
	chance       float64 // the chance level; 0: not watched (synthetic data)
	classes      int
	testExamples int
	guard        int     // Config.ChanceGuard
	best         float64 // best test top-1 so far, as a fraction
	bestStep     int
	// atChance counts the evaluations at chance in a row after the run had learned (0: not collapsed), the first
	// of them at step since.
	atChance, since int
	warned          bool
}

// testSetChance returns the chance level ([MajorityTop1]) of dataset's test set, which has counts examples per
// class, with its numbers of classes and examples; the level is 0 (never judged) for synthetic data, whose test
// labels are random.
func testSetChance(dataset string, counts []int) (chance float64, classes, examples int) {
	for _, c := range counts {
		examples += c
	}
	if dataset != "synthetic" {
		chance = MajorityTop1(counts)
	}
	return chance, len(counts), examples
}

// checkpointAtChance judges an evaluated checkpoint (result, on a test set of counts examples per class) against
// chance level; nil where it is above it, and on synthetic data (its random test labels make chance the most a
// network can reach). records is the run's metrics log, for its best test top-1 up to the checkpoint's step (a
// checkpoint from before the run learned has not collapsed).
func checkpointAtChance(dataset string, counts []int, result *Result, records []Record) *ChanceEnding {
	chance, classes, n := testSetChance(dataset, counts)
	if !IsAtChance(result.TestTop1, chance, n) {
		return nil
	}
	e := &ChanceEnding{Chance: chance, Classes: classes, TestExamples: n, Since: result.Steps,
		Final: result.TestTop1, Best: result.TestTop1, BestStep: result.Steps}
	for _, rec := range records {
		if rec.TestTop1 != nil && rec.Step <= result.Steps && *rec.TestTop1 > e.Best {
			e.Best, e.BestStep = *rec.TestTop1, rec.Step
		}
	}
	return e
}

// newChanceWatch watches a run on dataset whose test set has counts examples per class, stopped by guard
// evaluations at chance (0: never), resumed with records (nil for a new run): their evaluations count as if
// observed in this invocation, without a warning.
func newChanceWatch(dataset string, counts []int, guard int, records []Record) *chanceWatch {
	w := &chanceWatch{guard: guard}
	w.chance, w.classes, w.testExamples = testSetChance(dataset, counts)
	for _, r := range records {
		if r.TestTop1 != nil {
			w.update(r.Step, *r.TestTop1)
		}
	}
	return w
}

// update takes the test top-1 evaluated after step.
func (w *chanceWatch) update(step int, top1 float64) {
	if IsAtChance(top1, w.chance, w.testExamples) && hasLearned(w.best, w.chance, w.testExamples) {
		if w.atChance == 0 {
			w.since = step
		}
		w.atChance++
	} else {
		w.atChance = 0
	}
	if top1 > w.best {
		w.best, w.bestStep = top1, step
	}
}

// observe takes the test top-1 evaluated after step and returns the warning to print ("" for none).
func (w *chanceWatch) observe(step int, top1 float64) string {
	w.update(step, top1)
	if w.atChance != 1 || w.warned {
		return ""
	}
	w.warned = true
	goesOn := "training goes on (-chance-guard N stops a run after N evaluations at chance), and its summary and " +
		"reports will say so"
	if w.guard > 0 {
		switch w.guard {
		case 1:
			goesOn = "-chance-guard 1 stops the run now"
		case 2:
			goesOn = "-chance-guard 2 stops the run if its next evaluation is at chance too"
		default:
			goesOn = fmt.Sprintf("-chance-guard %d stops the run if its next %d evaluations are at chance too",
				w.guard, w.guard-1)
		}
	}
	return fmt.Sprintf("warning: test top-1 fell to chance at step %d: %.2f %% (chance: %.2f %%, %d classes), "+
		"after %.2f %% at step %d. The network now predicts as if it had learned nothing (the loss does not grow, "+
		"so the divergence guard does not stop it); %s. A lower -lr is the first thing to try.", step, 100*top1,
		100*w.chance, w.classes, 100*w.best, w.bestStep, goesOn)
}

// stop returns the error that stops the run, once its guard's count of evaluations at chance is reached (nil
// before, and with no guard).
func (w *chanceWatch) stop(step int, top1 float64) *CollapseError {
	if w.guard <= 0 || w.atChance < w.guard {
		return nil
	}
	return &CollapseError{Step: step, Evaluations: w.atChance, Guard: w.guard,
		Ending: ChanceEnding{Chance: w.chance, Classes: w.classes, TestExamples: w.testExamples, Since: w.since,
			Final: top1, Best: w.best, BestStep: w.bestStep}}
}

// CollapseError reports a run stopped by -chance-guard: its test top-1 had been at chance for Evaluations
// evaluations in a row (Guard, the guard's count) after it had learned. The run keeps the checkpoint of the step
// it stopped at: resuming it with -chance-guard 0 trains on (its network is collapsed: a lower -lr, from the start
// in a new -out, is what may avoid the collapse).
type CollapseError struct {
	// Step is the step of the evaluation that stopped the run; Evaluations the evaluations at chance in a row
	// then, Guard the -chance-guard count; Ending how the run fell to chance.
	Step        int          `json:"step"`
	Evaluations int          `json:"evaluations"`
	Guard       int          `json:"guard"`
	Ending      ChanceEnding `json:"ending"`
	// Checkpoint is the checkpoint written at Step.
	Checkpoint string `json:"checkpoint"`
}

// Error implements error.
func (e *CollapseError) Error() string {
	evaluations := fmt.Sprintf("%d evaluations", e.Evaluations)
	if e.Evaluations == 1 {
		evaluations = "1 evaluation"
	}
	return fmt.Sprintf("training stopped at step %d by -chance-guard %d: the run %s (%s at chance in a row); "+
		"checkpoint %s kept: -resume with -chance-guard 0 trains on; a lower -lr, from the start in a new -out, may "+
		"avoid the collapse", e.Step, e.Guard, e.Ending, evaluations, e.Checkpoint)
}

// collapsedFileName marks a run folder whose last training -chance-guard stopped: it holds the [CollapseError],
// so that nowt compare reports the run instead of training it on (the same settings collapse the same way).
// Resuming the run removes it.
const collapsedFileName = "collapsed.json"

// writeCollapse writes the collapse mark of the run in dir.
func writeCollapse(dir string, e *CollapseError) error { return writeMark(dir, collapsedFileName, e) }

// readCollapse returns the collapse mark of the run in dir, if it has a readable one.
func readCollapse(dir string) (*CollapseError, bool) {
	return readMark[CollapseError](dir, collapsedFileName)
}
