package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/report"
	"github.com/nowt-ml/nowt/trainer"
)

func runCompare(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", "[flags]",
		"Trains one model on one dataset under each of -rules in turn, with the same seed, schedule and\n"+
			"hyperparameters, each as a normal run in -out/<rule>/ (config.json, metrics.jsonl, checkpoints). Then writes\n"+
			"into -out: results.md (final and best test top-1, top-5, test loss, final weight, delta and gradient angle\n"+
			"per layer, wall time, and this command line), test-error.png, test-loss.png, final-angles.png, and\n"+
			"angles-<rule>.png and delta-angles-<rule>.png per rule other than bp. Running the same command again reuses\n"+
			"the finished runs (also one whose checkpoints were deleted: its metrics.jsonl is the run) and resumes an\n"+
			"interrupted one (Ctrl-C writes a checkpoint and stops); a rule that diverged is reported as such, not\n"+
			"trained again (continue it with nowt train -resume and a lower -lr: the comparison then keeps that rate).\n"+
			"A -out/<rule>/ holding a run with other settings is an error, except for other rules' hyperparameters\n"+
			"(change -wm-batch after deleting -out/wm/: the other rules' runs are reused and only wm trains again).\n\n"+
			"With -seeds 1,2,3 it makes that comparison once per seed, in -out/seed-<n>/, and then writes -out/results.md\n"+
			"over the seeds: each rule's final top-1 per seed with its mean and standard deviation, and its difference\n"+
			"from bp paired by seed (every rule of a seed starts from the same network) with a sign test, every pair\n"+
			"of rules' paired difference and how many seeds put each above the other, and -out/seeds-top1.png. One\n"+
			"seed's difference within the noise is not an ordering: compare over seeds.\n\n"+
			"Example: nowt compare -model mlp -dataset mnist -epochs 3 -rules bp,fa,kp -out runs/compare-mlp\n"+
			"         nowt compare -model mlp -dataset mnist -epochs 1 -rules bp,fa,wm,kp -seeds 1,2,3 -out runs/seeds-mlp",
		stderr)
	defaults := trainer.DefaultConfig()
	defaults.Progress = false
	defaults.OutDir = "runs/compare"
	rf := addRunFlags(fs, defaults)
	rules := fs.String("rules", strings.Join(feedback.RuleNames(), ","),
		"comma-separated learning rules to compare (see nowt rules)")
	seedsFlag := fs.String("seeds", "", "comma-separated seeds: one comparison per seed in -out/seed-<n>/, and a "+
		"report over them in -out (instead of -seed)")
	hideFlags(fs, "rule")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	seeds, err := parseSeeds(fs, *seedsFlag)
	if err != nil {
		return err
	}
	ruleList := splitList(*rules)
	if len(ruleList) == 0 {
		return usagef("-rules is empty: give some of %s", strings.Join(feedback.RuleNames(), ", "))
	}
	for _, r := range ruleList {
		if _, err := feedback.RuleByName(r); err != nil {
			return usagef("-rules: %v", err)
		}
	}
	if flagGiven(fs, "rule") {
		return usagef("-rule does not apply to compare: list the rules with -rules")
	}
	cfg, err := rf.config(fs)
	if err != nil {
		return err
	}
	cfg.Notices = stderr
	for _, rule := range ruleList {
		c := cfg
		c.Rule = rule
		if err := c.Validate(); err != nil {
			return rf.explain(fs, err)
		}
	}
	if err := checkCompareOut(cfg.OutDir, ruleList, seeds != nil); err != nil {
		return err
	}
	goCtx, stop := interruptible(stderr)
	defer stop()
	if seeds != nil {
		return compareSeeds(goCtx, fs, rf, cfg, ruleList, seeds, commandLine(args), stdout)
	}
	c, err := trainer.Compare(goCtx, cfg, ruleList, stdout)
	if err != nil {
		return rf.explain(fs, err)
	}
	if err := report.Write(c.Dir, c, commandLine(args)); err != nil {
		return err
	}
	return printResults(stdout, c.Dir, "\n")
}

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", "-out DIR",
		"Writes the report of the comparison in -out (the -out of nowt compare) again from its runs' logs alone,\n"+
			"without training: results.md and the plots, for every <out>/<rule>/ holding a run. The runs may differ in\n"+
			"their settings (e.g. one learning rate per rule, each trained by its own nowt compare into -out), and a\n"+
			"<out>/<name> may be a link to a run kept elsewhere: the report shows it as <name> (e.g. fa-wd1e-4). A\n"+
			"comparison over seeds (nowt compare -seeds: <out>/seed-<n>/ folders) is reported seed by seed, then over the\n"+
			"seeds; a seed-<n> may be a link to a comparison made by its own nowt compare -seed <n>.\n\n"+
			"Example: nowt report -out runs/mnist-authors",
		stderr)
	dir := fs.String("out", "", "the comparison's folder")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("give the comparison's folder with -out (the -out of nowt compare)")
	}
	seedDirs, _, err := report.FindSeedDirs(*dir)
	if err != nil {
		return err
	}
	if len(seedDirs) > 0 {
		if _, err := trainer.LoadComparison(*dir); err == nil {
			return fmt.Errorf("%s holds both runs of its own and seed-<n> folders: report them apart (nowt report -out "+
				"on each seed's folder)", *dir)
		}
		return reportSeeds(*dir, seedDirs, stdout, stderr)
	}
	c, err := reportAgain(*dir, "", stderr)
	if err != nil {
		return err
	}
	return printResults(stdout, c.Dir, "")
}

// reportAgain writes the report of the comparison in dir again from its runs' logs, with the command that trained
// them as its last report recorded it, and returns the comparison. Its warnings name the comparison as label.
func reportAgain(dir, label string, stderr io.Writer) (*trainer.Comparison, error) {
	c, err := trainer.LoadComparison(dir)
	if err != nil {
		return nil, err
	}
	for _, rule := range c.Rules {
		if problem, ok := c.LogProblems[rule]; ok {
			fmt.Fprintf(stderr, "nowt report: warning: %s%s\n", label, problem)
		}
	}
	if err := report.Write(c.Dir, c, recordedCommand(c.Dir, "nowt report -out "+dir)); err != nil {
		return nil, err
	}
	return c, nil
}

// recordedCommand returns the command that trained the runs as dir's results.md recorded it, or def.
func recordedCommand(dir, def string) string {
	if previous, err := os.ReadFile(filepath.Join(dir, report.ResultsFileName)); err == nil {
		if m := commandBlock.FindSubmatch(previous); m != nil {
			return string(m[1])
		}
	}
	return def
}

// reportSeeds writes the reports of a comparison over seeds in dir again: each seed's, then the one over them.
func reportSeeds(dir string, seedDirs []string, stdout, stderr io.Writer) error {
	cs := make([]*trainer.Comparison, len(seedDirs))
	for i, name := range seedDirs {
		c, err := reportAgain(filepath.Join(dir, name), name+"/", stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		cs[i] = c
	}
	if err := report.WriteSeeds(dir, cs, seedDirs, recordedCommand(dir, "nowt report -out "+dir)); err != nil {
		return err
	}
	return printResults(stdout, dir, "")
}

// printResults prints dir's results.md and its path, after lead.
func printResults(stdout io.Writer, dir, lead string) error {
	path := filepath.Join(dir, report.ResultsFileName)
	md, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading back the results: %w", err)
	}
	fmt.Fprintf(stdout, "%s%s\nResults: %s\n", lead, md, path)
	return nil
}

// parseSeeds reads compare's -seeds: nil where it is not given; an error naming the flag where it is empty, holds
// something other than integers or a seed twice, or comes with -seed.
func parseSeeds(fs *flag.FlagSet, value string) ([]int64, error) {
	if !flagGiven(fs, "seeds") {
		return nil, nil
	}
	if flagGiven(fs, "seed") {
		return nil, usagef("give either -seed (one comparison) or -seeds (one per seed), not both")
	}
	parts := splitList(value)
	if len(parts) == 0 {
		return nil, usagef("-seeds is empty: give the seeds, e.g. -seeds 1,2,3")
	}
	seeds := make([]int64, 0, len(parts))
	for _, p := range parts {
		seed, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, usagef("-seeds %q: %q is not an integer seed", value, p)
		}
		if slices.Contains(seeds, seed) {
			return nil, usagef("-seeds %q: seed %d given twice", value, seed)
		}
		seeds = append(seeds, seed)
	}
	return seeds, nil
}

// checkCompareOut refuses an -out that holds the other kind of comparison: runs of one seed (<rule>/ folders)
// for a comparison over seeds, or seed-<n>/ folders for a comparison of one seed.
func checkCompareOut(out string, rules []string, overSeeds bool) error {
	if overSeeds {
		for _, rule := range rules {
			if _, err := os.Stat(filepath.Join(out, rule, "config.json")); err == nil {
				return usagef("-out %s holds a comparison of one seed (its %s/ run): a comparison over -seeds keeps one "+
					"folder per seed; choose another -out", out, rule)
			}
		}
		return nil
	}
	if _, err := os.Stat(out); err != nil {
		return nil // A new folder.
	}
	if names, _, err := report.FindSeedDirs(out); err == nil && len(names) > 0 {
		return usagef("-out %s holds a comparison over seeds (its %s/): add -seeds to go on with it, or choose "+
			"another -out", out, names[0])
	}
	return nil
}

// compareSeeds makes cfg's comparison of rules once per seed, each in <out>/seed-<n>/ with its own report, then
// writes the report over the seeds into cfg.OutDir.
func compareSeeds(goCtx context.Context, fs *flag.FlagSet, rf *runFlags, cfg trainer.Config, rules []string,
	seeds []int64, command string, stdout io.Writer) error {
	cs := make([]*trainer.Comparison, len(seeds))
	names := make([]string, len(seeds))
	for i, seed := range seeds {
		c := cfg
		c.Seed, c.OutDir = seed, report.SeedDir(cfg.OutDir, seed)
		names[i] = filepath.Base(c.OutDir)
		fmt.Fprintf(stdout, "\n##### seed %d (%d of %d): %s\n", seed, i+1, len(seeds), c.OutDir)
		comp, err := trainer.Compare(goCtx, c, rules, stdout)
		if err != nil {
			return rf.explain(fs, fmt.Errorf("seed %d: %w", seed, err))
		}
		if err := report.Write(comp.Dir, comp, command); err != nil {
			return err
		}
		cs[i] = comp
	}
	if err := report.WriteSeeds(cfg.OutDir, cs, names, command); err != nil {
		return err
	}
	return printResults(stdout, cfg.OutDir, "\n")
}

// commandBlock finds the command recorded in a results.md.
var commandBlock = regexp.MustCompile("(?m)^Command[^\n]*:\n\n```\n(.+)\n```")

// commandLine quotes the command as the user could type it again.
func commandLine(args []string) string {
	parts := []string{"nowt", "compare"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'$`\\;&|<>()*?[]{}#~!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
