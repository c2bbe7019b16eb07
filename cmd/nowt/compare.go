package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
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
			"the finished runs and resumes an interrupted one (Ctrl-C writes a checkpoint and stops); a rule that\n"+
			"diverged is reported as such, not trained again (continue it with nowt train -resume and a lower -lr: the\n"+
			"comparison then keeps that rate). A -out/<rule>/ holding a run with other settings is an error, except for\n"+
			"other rules' hyperparameters (change -wm-batch after deleting -out/wm/: the other rules' runs are reused\n"+
			"and only wm trains again).\n\n"+
			"Example: nowt compare -model mlp -dataset mnist -epochs 3 -rules bp,fa,kp -out runs/compare-mlp",
		stderr)
	defaults := trainer.DefaultConfig()
	defaults.Progress = false
	defaults.OutDir = "runs/compare"
	rf := addRunFlags(fs, defaults)
	rules := fs.String("rules", strings.Join(trainer.OrderRules(feedback.RuleNames()), ","),
		"comma-separated learning rules to compare (see nowt rules)")
	if err := parseFlags(fs, args); err != nil {
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
	goCtx, stop := interruptible(stderr)
	defer stop()
	c, err := trainer.Compare(goCtx, cfg, ruleList, stdout)
	if err != nil {
		return rf.explain(fs, err)
	}
	if err := report.Write(c.Dir, c, commandLine(args)); err != nil {
		return err
	}
	path := filepath.Join(c.Dir, report.ResultsFileName)
	md, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading back the results: %w", err)
	}
	fmt.Fprintf(stdout, "\n%s\nResults: %s\n", md, path)
	return nil
}

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", "-out DIR",
		"Writes the report of the comparison in -out (the -out of nowt compare) again from its runs' logs alone,\n"+
			"without training: results.md and the plots, for every <out>/<rule>/ holding a run. The runs may differ in\n"+
			"their settings (e.g. one learning rate per rule, each trained by its own nowt compare into -out), and a\n"+
			"<out>/<name> may be a link to a run kept elsewhere: the report shows it as <name> (e.g. fa-wd1e-4).\n\n"+
			"Example: nowt report -out runs/mnist-authors",
		stderr)
	dir := fs.String("out", "", "the comparison's folder")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("give the comparison's folder with -out (the -out of nowt compare)")
	}
	c, err := trainer.LoadComparison(*dir)
	if err != nil {
		return err
	}
	for _, rule := range c.Rules {
		if problem, ok := c.LogProblems[rule]; ok {
			fmt.Fprintf(stderr, "nowt report: warning: %s\n", problem)
		}
	}
	command := "nowt report -out " + *dir
	if previous, err := os.ReadFile(filepath.Join(c.Dir, report.ResultsFileName)); err == nil {
		if m := commandBlock.FindSubmatch(previous); m != nil {
			command = string(m[1]) // The command that trained the runs, as the last report recorded it.
		}
	}
	if err := report.Write(c.Dir, c, command); err != nil {
		return err
	}
	path := filepath.Join(c.Dir, report.ResultsFileName)
	md, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading back the results: %w", err)
	}
	fmt.Fprintf(stdout, "%s\nResults: %s\n", md, path)
	return nil
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
