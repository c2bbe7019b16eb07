package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/trainer"
)

func runCompare(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", "[flags]",
		"Trains one model on one dataset under each of -rules in turn, with the same seed, schedule and\n"+
			"hyperparameters, each as a normal run in -out/<rule>/ (config.json, metrics.jsonl, checkpoints). Then writes\n"+
			"into -out: results.md (final and best test top-1, top-5, final weight and delta angle per layer, wall time,\n"+
			"and this command line), accuracy.png, loss.png, and angles-<rule>.png and delta-angles-<rule>.png per rule\n"+
			"other than bp. Running the same command again reuses the finished runs and resumes an interrupted one\n"+
			"(Ctrl-C writes a checkpoint and stops); a -out/<rule>/ holding a run with other settings is an error.\n\n"+
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
	c, err := trainer.Compare(goCtx, cfg, ruleList, stdout, commandLine(args))
	if err != nil {
		return rf.explain(fs, err)
	}
	path := filepath.Join(c.Dir, trainer.ResultsFileName)
	md, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading back the results: %w", err)
	}
	fmt.Fprintf(stdout, "\n%s\nResults: %s\n", md, path)
	return nil
}

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
