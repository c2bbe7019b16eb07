// Command nowt trains and evaluates networks under learning rules without weight transport (BP, FA, SS, WM, KP).
//
// Usage:
//
//	nowt train   [flags]   train (or -resume) a model under a rule
//	nowt eval    -out DIR  evaluate a run's newest checkpoint
//	nowt compare [flags]   train several rules on one model and write a table and plots
//	nowt report  -out DIR  write a comparison's table and plots again from its logs
//	nowt bench   [flags]   measure training throughput (images/s) per model and rule
//	nowt rules             list the learning rules
//	nowt models            list the models
//	nowt devices           show the backend and its devices
//	nowt setup             install a PJRT plugin (XLA backend)
//
// Run "nowt <command> -h" for each command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"train", "train (or -resume) a model under a learning rule", runTrain},
		{"eval", "evaluate the newest checkpoint of a run", runEval},
		{"compare", "train several rules on one model; write a markdown table and PNG plots", runCompare},
		{"report", "write a comparison's table and plots again from its runs' logs", runReport},
		{"bench", "measure training throughput (images/s) per model and rule", runBench},
		{"rules", "list the learning rules", runRules},
		{"models", "list the models", runModels},
		{"devices", "show the backend, its devices and the PJRT plugin", runDevices},
		{"setup", "install a PJRT plugin for the XLA backend (cpu, cuda or tpu)", runSetup},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "nowt: deep learning without weight transport (BP, FA, SS, WM, KP) on GoMLX.")
	fmt.Fprintln(w, "\nUsage: nowt <command> [flags]    (nowt <command> -h for its flags)\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a command and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(stderr, "nowt %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "nowt: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlagSet creates a command's flag set with a usage line and description.
func newFlagSet(name, usageLine, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nowt "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nowt %s %s\n\n%s\n\nFlags:\n", name, usageLine, description)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and rejects positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags go before nothing else; see -h)", fs.Arg(0))
	}
	return nil
}

// interruptible returns a context cancelled by SIGINT/SIGTERM, so training stops cleanly with a checkpoint.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
