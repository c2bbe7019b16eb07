package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/trainer"
	"github.com/nowt-ml/nowt/xla"
)

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "-dataset NAME [-data PATH] [-split LIST]",
		"Reads and decodes every example of a dataset's splits, as training would, and lists each unreadable image\n"+
			"(corrupt, empty or of an unsupported format) with the reason. Exits with status 1 if any is found.\n\n"+
			"Example: nowt check -dataset imagefolder -data /data/imagenet -split train,val", stderr)
	dataset := fs.String("dataset", "mnist", "dataset: "+strings.Join(input.Names(), ", "))
	data := fs.String("data", "", "dataset location (as for nowt train)")
	splits := fs.String("split", "", "comma-separated splits to check (default: the ones training reads: train and test, or train and val for imagefolder)")
	imageSize := fs.Int("image-size", 0, "image side for image folders, cifar10-jpeg and synthetic data (0: the dataset's default); other datasets have one size")
	limit := fs.Int("limit", 0, "check only the first N examples of each split in file order (0: all)")
	workers := fs.Int("workers", 0, "decoding workers (0: all cores)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !contains(input.Names(), *dataset) {
		return usagef("-dataset: unknown dataset %q: valid datasets are %s", *dataset, strings.Join(input.Names(), ", "))
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"-image-size", *imageSize}, {"-limit", *limit}, {"-workers", *workers}} {
		if v.v < 0 {
			return usagef("%s %d: must be ≥ 0", v.name, v.v)
		}
	}
	if *imageSize > 0 && !input.TakesImageSize(*dataset) {
		return usagef("-image-size %d: dataset %s has images of one fixed size; -image-size applies to %s: leave it out",
			*imageSize, *dataset, input.ImageSizeDatasets())
	}
	list := splitList(*splits)
	if len(list) == 0 {
		list = []string{"train", "test"}
		if *dataset == "imagefolder" {
			list = []string{"train", "val"}
		}
	}
	total := 0
	for _, split := range list {
		checked, bad, err := input.Check(*dataset, *data, split, input.Options{ImageSize: *imageSize, Limit: *limit,
			Workers: *workers}, func(err error) { fmt.Fprintf(stdout, "unreadable: %v\n", err) })
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s/%s: %d examples checked, %d unreadable\n", *dataset, split, checked, bad)
		total += bad
	}
	if total > 0 {
		return fmt.Errorf("%d unreadable examples: training skips them with a warning (or stops at the first with -strict)", total)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", "Prints nowt's module version and the commit it was built from.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	xlaLine := "xla backend: not compiled in (pure Go only; build with CGO_ENABLED=1 on linux/amd64)"
	if xla.CompiledIn() {
		xlaLine = "xla backend: compiled in"
	}
	fmt.Fprintln(stdout, xlaLine)
	return nil
}

// versionString describes the build: module path and version, VCS commit (with its time, and "modified" for
// uncommitted changes) and Go version, from the binary's build information.
func versionString() string {
	b := trainer.ReadBuild()
	module, version := b.Module, b.Version
	if module == "" {
		module = "github.com/nowt-ml/nowt"
	}
	if version == "" {
		version = "(devel)"
	}
	commit := "commit unknown (built without VCS information: `make build` records it, as does go build -buildvcs=true in a git checkout)"
	if b.Commit != "" {
		commit = "commit " + b.Commit
		if b.CommitTime != "" {
			commit += " (" + b.CommitTime + ")"
		}
		if b.Modified {
			commit += ", with uncommitted changes"
		}
	}
	return fmt.Sprintf("nowt %s %s, %s, %s", module, version, commit, b.GoVersion)
}
