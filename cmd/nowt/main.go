// Command nowt trains and evaluates networks under learning rules without weight transport (BP, FA, SS, WM, KP).
//
// Usage:
//
//	nowt train   [flags]   train (or -resume) a model under a rule
//	nowt eval    -out DIR  evaluate a run's newest (or a chosen) checkpoint
//	nowt compare [flags]   train several rules on one model and write a table and plots
//	nowt report  -out DIR  write a comparison's table and plots again from its logs
//	nowt bench   [flags]   measure training throughput (images/s) per model and rule
//	nowt check   [flags]   read every image of a dataset and list the unreadable ones
//	nowt rules             list the learning rules
//	nowt models            list the models
//	nowt devices           show the backend and its devices
//	nowt setup             install a PJRT plugin (XLA backend)
//	nowt version           print nowt's module version and commit
//
// Run "nowt <command> -h" for each command's flags.
//
// Exit status: 0 success, 1 failure, 2 invalid command line or setting (the message names the flag), 130
// interrupted (Ctrl-C; training saves a checkpoint first, a second Ctrl-C quits at once).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/trainer"
	"github.com/nowt-ml/nowt/xla"
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
		{"check", "read every image of a dataset and list the unreadable ones", runCheck},
		{"rules", "list the learning rules", runRules},
		{"models", "list the models", runModels},
		{"devices", "show the backend, its devices and the PJRT plugin", runDevices},
		{"setup", "install a PJRT plugin for the XLA backend (cpu, cuda or tpu)", runSetup},
		{"version", "print nowt's module version and commit", runVersion},
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

// Exit statuses.
const (
	exitFailure     = 1
	exitUsage       = 2   // invalid command line or setting
	exitInterrupted = 130 // 128 + SIGINT, the shell's convention
)

// usageError is an invalid command line: the command exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run dispatches to a command and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "help" && !strings.HasPrefix(args[1], "-") {
		args = []string{args[1], "-h"} // nowt help train: train's flags
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	if args[0] == "-version" || args[0] == "--version" {
		args = []string{"version"}
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return runCommand(c, args[1:], stdout, stderr)
		}
	}
	if strings.HasPrefix(args[0], "-") { // flags before the command: nowt -rule bp train
		hint := "nowt <command> [flags]"
		for _, a := range args[1:] {
			if slices.ContainsFunc(commands(), func(c command) bool { return c.name == a }) {
				hint = "nowt " + a + " " + args[0] + " ..."
				break
			}
		}
		fmt.Fprintf(stderr, "nowt: %q is a flag, and flags come after the command: %s\n\n", args[0], hint)
		usage(stderr)
		return exitUsage
	}
	fmt.Fprintf(stderr, "nowt: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// runCommand runs one command and turns its error into a message and an exit status. A panic (a bug) is
// reported as one line, never as a goroutine dump.
func runCommand(c command, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "nowt %s: internal error: %v\n(this is a bug in nowt: please report it with the command line)\n",
				c.name, withoutStack(fmt.Sprint(r)))
			code = exitFailure
		}
	}()
	err := c.run(args, stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "nowt %s: %s\n", c.name, withoutStack(err.Error()))
	return exitCode(err)
}

// exitCode is the exit status for a command's error.
func exitCode(err error) int {
	var usageErr *usageError
	var cfgErr *trainer.ConfigError
	var intErr *trainer.InterruptedError
	var flagErr *flagError
	var specErr *xla.InvalidSpecError
	var dataErr *input.SettingError
	switch {
	case errors.As(err, &intErr):
		return interruptedStatus()
	case errors.As(err, &usageErr), errors.As(err, &cfgErr), errors.As(err, &flagErr), errors.As(err, &specErr),
		errors.As(err, &dataErr):
		return exitUsage
	}
	return exitFailure
}

// withoutStack cuts a message where a stack trace starts (GoMLX errors may carry one).
func withoutStack(msg string) string {
	for _, marker := range []string{"\ngoroutine ", "\n\tgithub.com/", "\ngithub.com/"} {
		if i := strings.Index(msg, marker); i >= 0 {
			msg = msg[:i]
		}
	}
	return strings.TrimRight(msg, "\n")
}

// newFlagSet creates a command's flag set with a usage line and description.
func newFlagSet(name, usageLine, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nowt "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nowt %s %s\n\n%s\n\nFlags:\n", name, usageLine, description)
		shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage != hiddenUsage {
				shown.Var(f.Value, f.Name, f.Usage)
				shown.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		shown.PrintDefaults()
	}
	return fs
}

// hiddenUsage marks a flag that -h leaves out (see hideFlags).
const hiddenUsage = "\x00hidden"

// hideFlags leaves the named flags, defined by flags a command shares with others (addRunFlags), out of its -h:
// the command does not use them, and refuseHidden turns one given into a usage error.
func hideFlags(fs *flag.FlagSet, names ...string) {
	for _, name := range names {
		if f := fs.Lookup(name); f != nil {
			f.Usage = hiddenUsage
		}
	}
}

// refuseHidden is the usage error for the first flag hidden by hideFlags that the command line gives (nil if
// none): it does not apply to the command, for the reason why.
func refuseHidden(fs *flag.FlagSet, command, why string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && f.Usage == hiddenUsage {
			err = usagef("-%s does not apply to %s: %s", f.Name, command, why)
		}
	})
	return err
}

// flagError is a command line the flag package rejected (it has printed the message and the usage).
type flagError struct{ error }

// parseFlags parses args and rejects positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &flagError{err}
	}
	if fs.NArg() > 0 {
		stray := fs.Arg(0)
		if i := len(args) - fs.NArg(); i > 0 {
			name := strings.TrimLeft(args[i-1], "-")
			if f := fs.Lookup(name); f != nil && isBoolFlag(f) {
				return usagef("unexpected argument %q: -%s is a boolean flag, its value goes after '=': -%s=%s", stray, name, name, stray)
			}
		}
		return usagef("unexpected argument %q (every argument is a -flag; see -h)", stray)
	}
	return nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// exitNow ends the process; tests replace it.
var exitNow = os.Exit

// signalEcho is how soon after the first a second SIGINT/SIGTERM is taken for the same one delivered twice, not
// a second request: GNU timeout (and kill with a process group) signal both the process and its group, microseconds
// apart, while a person's second Ctrl-C comes a few hundred milliseconds after the first at the soonest.
const signalEcho = 100 * time.Millisecond

// interruptSignal is the signal that interrupted the running command (0: none yet).
var interruptSignal atomic.Int32

// interruptedStatus is the exit status of an interrupted command: 128 + the signal's number, the shell's
// convention (130 for Ctrl-C's SIGINT, 143 for SIGTERM, what a batch scheduler sends), 130 when it is unknown.
func interruptedStatus() int {
	if s := interruptSignal.Load(); s > 0 {
		return 128 + int(s)
	}
	return exitInterrupted
}

// interruptible returns a context cancelled by the first SIGINT/SIGTERM, so that training stops cleanly with a
// checkpoint; it says so at once on stderr. A second signal (more than signalEcho after the first) ends the
// process at once with status 130. Call stop when done.
func interruptible(stderr io.Writer) (ctx context.Context, stop func()) {
	interruptSignal.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var first time.Time
		select {
		case s := <-signals:
			if number, ok := s.(syscall.Signal); ok {
				interruptSignal.Store(int32(number))
			}
			first = time.Now()
			fmt.Fprintln(stderr, "\nInterrupted: saving a checkpoint after the current step, then stopping (Ctrl-C again quits at once, without saving).")
			cancel()
		case <-done:
			return
		}
		for {
			select {
			case <-signals:
				if time.Since(first) < signalEcho {
					continue // the first signal, delivered a second time
				}
				fmt.Fprintln(stderr, "\nInterrupted again: quitting without saving.")
				exitNow(interruptedStatus())
				return
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(signals)
		close(done)
		cancel()
	}
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
