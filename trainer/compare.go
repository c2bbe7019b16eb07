package trainer

import (
	gocontext "context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nowt-ml/nowt/feedback"
)

// Comparison holds the runs of one model and dataset under several learning rules, as [Compare] returns it (and
// package report reports it).
type Comparison struct {
	// Results is each rule's run summary, by rule name. A run that was reused rather than trained is summarised
	// from its records, and its Duration is the wall time stored when it was trained.
	Results map[string]*Result
	// Records is each rule's metrics log (metrics.jsonl), by rule name.
	Records map[string][]Record
	// Dir is the comparison's folder: one sub-folder per rule (and the report).
	Dir string
	// Rules lists the rules in the order compared ("" = [feedback.Order]).
	Rules []string
	// Status says, by rule name, how its run was obtained: "trained", "resumed", "reused" or "diverged" (the loss
	// became NaN or the divergence guard stopped it; the run is reported up to its last record).
	Status map[string]string
	// Divergence holds, by rule name, how a diverged run stopped (nil where not known).
	Divergence map[string]*NaNError
	// Collapse holds, by rule name, how -chance-guard stopped a run (status "collapsed").
	Collapse map[string]*CollapseError
	// LogProblems holds, by rule name, what was wrong with a run's metrics log when [LoadComparison] read it (a
	// line that does not decode, or no log): the run is reported from the records before the problem.
	LogProblems map[string]string
}

// Statuses of a rule's run in a [Comparison].
const (
	StatusTrained  = "trained"
	StatusResumed  = "resumed"
	StatusReused   = "reused"
	StatusDiverged = "diverged"
	// StatusCollapsed: -chance-guard stopped the run, its test top-1 at chance after it had learned; the run is
	// reported up to its last record (a final evaluation at chance).
	StatusCollapsed = "collapsed"
)

// wallTimeFileName holds, in a rule's sub-run folder, the accumulated wall time of the Train invocations that
// produced it (one killed outright counts up to its newest checkpoint: [wallClock]), so that a reused run still
// reports how long it took.
const wallTimeFileName = "wall_time.json"

type wallTime struct {
	Seconds float64 `json:"seconds"`
}

// Compare trains base's model on base's dataset under each of rules in turn, with the same seed and schedule,
// each into its own run folder base.OutDir/<rule> (a normal [Train] run), and returns them; package report
// writes the comparison's tables and plots. base.Rule is ignored.
//
// A rule whose folder already holds a finished run (newest checkpoint at the planned last step, or, where its
// checkpoints are gone, a metrics log that reaches that step) is reused, not retrained; an unfinished one is
// resumed; in both cases its stored configuration must match base (only Backend, Workers, Progress, a larger
// Epochs and the hyperparameters of other rules may differ: a comparison that retunes WM's -wm-batch trains only
// wm, once its old folder is deleted, and the other runs keep their stored values). A rule whose loss becomes NaN
// is reported as diverged and the comparison goes on. Each rule's progress and summary ([WriteSummary]) go to out.
// Cancelling goCtx stops the current run with a checkpoint and returns an error; running Compare again continues
// where it stopped.
func Compare(goCtx gocontext.Context, base Config, rules []string, out io.Writer) (*Comparison, error) {
	if out == nil {
		out = io.Discard
	}
	if len(rules) == 0 {
		return nil, invalid("-rules", "-rules: no rules given (valid rules are %s)", strings.Join(feedback.RuleNames(), ", "))
	}
	seen := map[string]bool{}
	normalized := make([]string, len(rules))
	for i, rule := range rules {
		if _, err := feedback.RuleByName(rule); err != nil {
			return nil, invalid("-rules", "-rules: %v", err)
		}
		rule = strings.ToLower(strings.TrimSpace(rule))
		if seen[rule] {
			return nil, invalid("-rules", "-rules: rule %q given twice", rule)
		}
		seen[rule] = true
		normalized[i] = rule
	}
	rules = normalized
	if base.OutDir == "" {
		return nil, invalid("-out", "-out: no output folder given")
	}
	if err := checkNotAFile(base.OutDir, "the comparison's"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(base.OutDir, configFileName)); err == nil {
		return nil, invalid("-out", "-out %s holds a run of nowt train (its %s): a comparison keeps one run folder per "+
			"rule inside its -out; choose another -out", base.OutDir, configFileName)
	}
	c := &Comparison{Results: map[string]*Result{}, Records: map[string][]Record{}, Dir: base.OutDir,
		Rules: append([]string(nil), rules...), Status: map[string]string{}, Divergence: map[string]*NaNError{},
		Collapse: map[string]*CollapseError{}}
	for i, rule := range rules {
		cfg := base
		cfg.Rule, cfg.OutDir = rule, filepath.Join(base.OutDir, rule)
		if err := cfg.Validate(); err != nil {
			return c, fmt.Errorf("rule %s: %w", rule, err)
		}
		fmt.Fprintf(out, "\n=== %s (%d of %d): %s\n", rule, i+1, len(rules), cfg.OutDir)
		res, status, err := compareOne(goCtx, cfg, out)
		var nanErr *NaNError
		if errors.As(err, &nanErr) {
			fmt.Fprintf(out, "Rule %s diverged: %v\n", rule, err)
			status, err = StatusDiverged, nil
			c.Divergence[rule] = nanErr
		}
		var collapseErr *CollapseError
		if errors.As(err, &collapseErr) {
			fmt.Fprintf(out, "Rule %s stopped: %v\n", rule, err)
			status, err = StatusCollapsed, nil
			c.Collapse[rule] = collapseErr
		}
		var interrupted *InterruptedError
		if errors.As(err, &interrupted) {
			interrupted.Continue = "run the same command again to go on"
		}
		var storageErr *StorageError
		if errors.As(err, &storageErr) {
			storageErr.Continue = "then run the same command again to go on"
		}
		if err != nil {
			return c, fmt.Errorf("rule %s: %w", rule, err)
		}
		records, err := ReadRecords(filepath.Join(cfg.OutDir, metricsFileName))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return c, fmt.Errorf("rule %s: %w", rule, err)
		}
		// The records cover the whole run, also when it was resumed or reused: the best top-1 comes from them.
		res = resultFromRecords(cfg, records, res)
		if wt, ok := readWallTime(cfg.OutDir); ok {
			res.Duration = wt
		}
		c.Results[rule], c.Records[rule], c.Status[rule] = res, records, status
		if res.Steps > 0 {
			if err := WriteSummary(out, res); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

// compareOne trains, resumes or reuses one rule's run.
func compareOne(goCtx gocontext.Context, cfg Config, out io.Writer) (*Result, string, error) {
	if nanErr, ok := readDivergence(cfg.OutDir); ok && holdsRun(cfg) {
		if kept, _ := listCheckpoints(filepath.Join(cfg.OutDir, checkpointDirName)); len(kept) > 0 {
			fmt.Fprintf(out, "The run in %s diverged in an earlier invocation and would again with the same settings; "+
				"delete it to retrain, or continue it with nowt train -resume -out %s and a lower -lr or a -clip-norm.\n", cfg.OutDir, cfg.OutDir)
		} else {
			fmt.Fprintf(out, "The run in %s diverged in an earlier invocation, before any checkpoint in range, and would "+
				"again with the same settings; delete it and train it anew with a lower -lr or a -clip-norm.\n", cfg.OutDir)
		}
		return nil, StatusDiverged, nanErr
	}
	if collapseErr, ok := readCollapse(cfg.OutDir); ok && cfg.ChanceGuard > 0 && holdsRun(cfg) {
		fmt.Fprintf(out, "-chance-guard stopped the run in %s in an earlier invocation, its test top-1 at chance; "+
			"run the same command with -chance-guard 0 to train it on, or delete it to retrain.\n", cfg.OutDir)
		return nil, StatusCollapsed, collapseErr
	}
	bases, err := listCheckpoints(filepath.Join(cfg.OutDir, checkpointDirName))
	if err != nil {
		return nil, "", err
	}
	// The step the run reached: its newest checkpoint's, or, where its checkpoints are gone (deleted to save space,
	// or a folder of collected logs), a finished metrics log's: its records are the whole run, not to be overwritten.
	var step int
	fromLog := len(bases) == 0
	if !fromLog {
		step = checkpointStep(bases[len(bases)-1])
	} else if last, _, ok := finishedLog(cfg.OutDir); ok {
		step = last
	} else {
		// Nothing to keep: a fresh run (a crash before the first checkpoint left at most a config and some records).
		res, err := Train(goCtx, cfg, out, false)
		return res, StatusTrained, err
	}
	stored, err := ReadConfig(cfg.OutDir)
	if err != nil {
		return nil, "", err
	}
	if err := sameRun(stored, cfg); err != nil {
		return nil, "", invalid("-out", "%s already holds a different run (%v): choose another -out, or delete %s", cfg.OutDir, err, cfg.OutDir)
	}
	total := plannedSteps(cfg, cfg.OutDir)
	switch {
	case total > 0 && step >= total && fromLog:
		fmt.Fprintf(out, "Reusing the finished run in %s from its metrics log (%d of %d steps; it keeps no checkpoint); "+
			"delete it to retrain.\n", cfg.OutDir, step, total)
		return nil, StatusReused, nil
	case total > 0 && step >= total:
		fmt.Fprintf(out, "Reusing the finished run in %s (%d of %d steps); delete it to retrain.\n", cfg.OutDir, step, total)
		return nil, StatusReused, nil
	case fromLog:
		return nil, "", invalid("-out", "%s holds a run that finished at step %d and keeps no checkpoint to continue it to "+
			"step %d (only its metrics log): ask for the steps it ran, or delete %s to train it anew", cfg.OutDir, step, total, cfg.OutDir)
	}
	fmt.Fprintf(out, "Resuming the unfinished run in %s from step %d.\n", cfg.OutDir, step)
	// What a recorded resume changed (a lower -lr after a divergence) stays.
	res, err := Train(goCtx, cfg.withStoredResumeChanges(stored), out, true)
	return res, StatusResumed, err
}

// finishedLog reports whether the run folder dir holds the metrics log of a finished run — one reaching the steps
// its stored configuration planned — and returns the log's last step and those planned steps. The folder may keep
// no checkpoint: a finished log is the run's result, which neither nowt train nor nowt compare overwrites.
func finishedLog(dir string) (last, planned int, ok bool) {
	stored, err := ReadConfig(dir)
	if err != nil {
		return 0, 0, false
	}
	records, err := ReadRecords(filepath.Join(dir, metricsFileName))
	if err != nil || len(records) == 0 {
		return 0, 0, false
	}
	last = records[len(records)-1].Step
	planned = plannedSteps(stored, dir)
	return last, planned, planned > 0 && last >= planned
}

// replacedRunNotice is what training anew into cfg.OutDir replaces, where the folder holds a run that stopped before
// its first checkpoint (nothing to continue from, so nowt train and nowt compare start it again there): its
// records and, when cfg is not that run, its settings, named. "" where the folder holds no such run.
func replacedRunNotice(cfg Config) string {
	stored, err := ReadConfig(cfg.OutDir)
	if err != nil {
		return ""
	}
	records, _ := ReadRecords(filepath.Join(cfg.OutDir, metricsFileName))
	what := "no record"
	if n := len(records); n > 0 {
		what = fmt.Sprintf("%d records up to step %d", n, records[n-1].Step)
	}
	same := "the same run, trained again from step 0"
	if err := sameRun(stored, cfg); err != nil {
		same = fmt.Sprintf("a different run: %v", err)
	}
	return fmt.Sprintf("notice: %s holds a run (%s, rule %s; %s) that stopped before its first checkpoint: it cannot be "+
		"continued, and this run replaces its config.json and metrics.jsonl (%s)", cfg.OutDir, stored.Model, stored.Rule,
		what, same)
}

// holdsRun reports whether cfg.OutDir holds a run of cfg's settings ([sameRun]), with a readable config.json.
func holdsRun(cfg Config) bool {
	stored, err := ReadConfig(cfg.OutDir)
	return err == nil && sameRun(stored, cfg) == nil
}

// addWallTime adds d to the wall time stored in the run folder dir (wall_time.json), written atomically.
func addWallTime(dir string, d time.Duration) error {
	previous, _ := readWallTime(dir)
	data, err := json.Marshal(wallTime{Seconds: (previous + d).Seconds()})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, wallTimeFileName), append(data, '\n'))
}

// wallClock adds an invocation's wall time to its run folder's wall_time.json as it goes: at each checkpoint
// (bank) and when the invocation ends, each time the time since the previous addition, so that a process killed
// outright (kill -9, a lost machine) still counts its time up to its newest checkpoint — the time that produced
// what a resume continues from.
type wallClock struct {
	dir    string
	start  time.Time
	banked time.Duration // already added to wall_time.json
}

// bank adds the time since the previous bank (or since start) to dir's wall time.
func (c *wallClock) bank() error {
	if c == nil {
		return nil
	}
	elapsed := time.Since(c.start)
	if err := addWallTime(c.dir, elapsed-c.banked); err != nil {
		return err
	}
	c.banked = elapsed
	return nil
}

func readWallTime(dir string) (time.Duration, bool) {
	wt, ok := readMark[wallTime](dir, wallTimeFileName)
	if !ok {
		return 0, false
	}
	return time.Duration(wt.Seconds * float64(time.Second)), true
}

// sameRun reports how the stored configuration of a run differs from the one wanted, ignoring what a resume may
// change (Backend, Workers, Progress, ChanceGuard, and Epochs growing), the hyperparameters of other rules than
// the run's (a comparison that retunes only WM reuses its other runs), and the settings a recorded resume changed
// (a lower -lr after a divergence: the run keeps it).
func sameRun(stored, want Config) error {
	s, w := stored, want.withStoredOtherRulesParams(stored).withStoredResumeChanges(stored)
	s.Backend, s.Workers, s.Progress, s.OutDir, s.Changes = w.Backend, w.Workers, w.Progress, w.OutDir, w.Changes
	s.ChanceGuard = w.ChanceGuard // when to stop a collapsed run, not which run
	if w.Epochs > s.Epochs && w.Steps == 0 && s.Steps == 0 {
		s.Epochs = w.Epochs
	}
	// Each difference is named as the user sets it (-hidden, -set bn_momentum), not by config.json's key.
	var diffs []string
	for _, c := range configChanges(s, w) {
		diffs = append(diffs, c.String())
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration differs: %s", strings.Join(diffs, "; "))
}

// sortedMapKeys returns the keys present in any of maps, sorted, each once.
func sortedMapKeys[V any](ms ...map[string]V) []string {
	var keys []string
	for _, m := range ms {
		keys = slices.AppendSeq(keys, maps.Keys(m))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// plannedSteps is the number of training steps cfg asks for: cfg.Steps, or cfg.Epochs times the steps per epoch
// found in the run's records (0 if they cannot tell).
func plannedSteps(cfg Config, dir string) int {
	if cfg.Steps > 0 {
		return cfg.Steps
	}
	records, _ := ReadRecords(filepath.Join(dir, metricsFileName))
	for i := len(records) - 1; i >= 0; i-- {
		if r := records[i]; r.Epoch > 0 {
			return cfg.Epochs * int(math.Round(float64(r.Step)/r.Epoch))
		}
	}
	return 0
}

// resultFromRecords summarises a run from its records: final and best test metrics, last alignment. The
// checkpoint and, if res is given, its fields that records do not hold are kept.
func resultFromRecords(cfg Config, records []Record, res *Result) *Result {
	out := &Result{Config: cfg}
	if res != nil {
		*out = *res
	}
	if bases, _ := listCheckpoints(filepath.Join(cfg.OutDir, checkpointDirName)); len(bases) > 0 && out.Checkpoint == "" {
		out.Checkpoint = bases[len(bases)-1]
	}
	s := Summarize(records)
	if len(records) > 0 {
		out.Steps, out.Epochs = s.Steps, s.Epochs
	}
	if s.Final != nil {
		out.TestTop1, out.TestTop5 = *s.Final.TestTop1, valueOr(s.Final.TestTop5, math.NaN())
		out.TestLoss = valueOr(s.Final.TestLoss, math.NaN())
		out.BestTestTop1 = s.Best
	}
	if s.Layers != nil {
		out.Layers = s.Layers
	}
	out.AtChance = nil
	if ending, ok := EndedAtChance(&out.Config, records); ok {
		out.AtChance = &ending
	}
	return out
}

func valueOr(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

// LoadComparison reads back the comparison in dir from its rules' run folders (every sub-folder holding a
// config.json, or a symbolic link to one: a comparison can be assembled from runs kept elsewhere, each under the
// link's name): each run's configuration, metrics log and stored wall time, without training anything. The
// runs may differ in any setting (a learning rate per rule, say); the rules are in [feedback.Order].
func LoadComparison(dir string) (*Comparison, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if target, ok := linkToNothing(dir); ok {
			return nil, fmt.Errorf("reading the comparison in %s: it is a link to %s, which does not exist: point it at "+
				"the -out of nowt compare or remove it", dir, target)
		}
		return nil, fmt.Errorf("reading the comparison in %s: %w", dir, err)
	}
	c := &Comparison{Results: map[string]*Result{}, Records: map[string][]Record{}, Dir: dir, Status: map[string]string{},
		Divergence: map[string]*NaNError{}, Collapse: map[string]*CollapseError{}, LogProblems: map[string]string{}}
	var rules []string
	for _, e := range entries {
		sub := filepath.Join(dir, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			info, err := os.Stat(sub)
			if err != nil {
				return nil, fmt.Errorf("reading the comparison in %s: %s is a link to a run that cannot be read "+
					"(%w): point it at a run folder of nowt compare or remove it", dir, e.Name(), err)
			}
			if !info.IsDir() {
				continue
			}
		} else if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(sub, configFileName)); err != nil {
			continue
		}
		cfg, err := ReadConfig(sub)
		if err != nil {
			return nil, err
		}
		rule := e.Name()
		records, err := ReadRecords(filepath.Join(sub, metricsFileName))
		var bad *badLineError
		switch {
		case errors.As(err, &bad) && bad.linesAfter == 0:
			// A last line cut short by a crash: report what came before it, and say so.
			c.LogProblems[rule] = fmt.Sprintf("%s/%s, line %d, does not decode (%v): reported from the %d records "+
				"before it (nowt train -resume -out %s repairs the log and continues the run)", rule, metricsFileName,
				bad.line, bad.err, len(records), sub)
		case errors.As(err, &bad):
			// A damaged line with records after it, which no crash makes (and which a resume refuses to rewrite).
			c.LogProblems[rule] = fmt.Sprintf("%s/%s, line %d, does not decode (%v), and %d more lines follow it: "+
				"damaged, not cut short by a crash; reported from the %d records before it (repair or delete that line, "+
				"then report again)", rule, metricsFileName, bad.line, bad.err, bad.linesAfter, len(records))
		case errors.Is(err, os.ErrNotExist):
			c.LogProblems[rule] = fmt.Sprintf("%s/ has no %s: no record to report", rule, metricsFileName)
		case err != nil:
			return nil, err
		case len(records) == 0:
			c.LogProblems[rule] = fmt.Sprintf("%s/%s holds no records: nothing to report", rule, metricsFileName)
		}
		res := resultFromRecords(cfg, records, nil)
		if wt, ok := readWallTime(sub); ok {
			res.Duration = wt
		}
		c.Results[rule], c.Records[rule] = res, records
		if e, ok := readDivergence(sub); ok {
			c.Status[rule], c.Divergence[rule] = StatusDiverged, e
		}
		if e, ok := readCollapse(sub); ok {
			c.Status[rule], c.Collapse[rule] = StatusCollapsed, e
		}
		rules = append(rules, rule)
	}
	if len(rules) == 0 {
		if _, err := os.Stat(filepath.Join(dir, configFileName)); err == nil {
			evaluate := ""
			if bases, _ := listCheckpoints(filepath.Join(dir, checkpointDirName)); len(bases) > 0 {
				evaluate = fmt.Sprintf(" (nowt eval -out %s evaluates the run itself)", dir)
			}
			return nil, fmt.Errorf("%s is one run (it holds a %s), not a comparison: give the folder above it, the -out "+
				"of nowt compare%s", dir, configFileName, evaluate)
		}
		return nil, fmt.Errorf("%s holds no runs (no sub-folder with a %s): is it the -out of nowt compare?", dir, configFileName)
	}
	c.Rules = feedback.SortNames(rules)
	return c, nil
}
