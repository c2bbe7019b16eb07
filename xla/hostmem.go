package xla

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/units"
)

// HostMemoryError reports variables whose initial values do not fit in the host's memory: a network far larger
// than intended (a width of 10⁸, say). Allocating them would end the process with Go's "out of memory" fatal
// error, which no caller can recover from.
type HostMemoryError struct {
	// Need is the bytes the variables' values take, Available the host memory available (Linux's MemAvailable).
	Need, Available uint64
	// Variables counts the variables, Largest names the largest of them and LargestBytes its size.
	Variables    int
	Largest      string
	LargestBytes uint64
}

// Error implements error.
func (e *HostMemoryError) Error() string {
	return fmt.Sprintf("the network's %d variables need %s of memory for their initial values, more than the %s "+
		"this machine has available (the largest, %s, %s): make the network smaller", e.Variables,
		units.Bytes(e.Need), units.Bytes(e.Available), e.Largest, units.Bytes(e.LargestBytes))
}

// checkHostMemory returns a *HostMemoryError when the variables of ctx that have no value yet would not fit in
// the host memory available (where it can be read: Linux); nil otherwise.
func checkHostMemory(ctx *context.Context) error {
	available, ok := availableHostMemory()
	if !ok {
		return nil
	}
	e := &HostMemoryError{Available: available}
	for v := range ctx.IterVariables() {
		if v.HasValue() {
			continue
		}
		size := uint64(v.Shape().Memory())
		e.Need += size
		e.Variables++
		if size > e.LargestBytes {
			e.Largest, e.LargestBytes = v.ScopeAndName(), size
		}
	}
	if e.Need <= available {
		return nil
	}
	return e
}

// availableHostMemory is Linux's estimate of the memory available to a new allocation without swapping
// (MemAvailable in /proc/meminfo), in bytes; ok is false where it cannot be read.
func availableHostMemory() (bytes uint64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return parseMemAvailable(bufio.NewScanner(f))
}

// parseMemAvailable reads the MemAvailable line ("MemAvailable:   23456789 kB") of a /proc/meminfo listing.
func parseMemAvailable(lines *bufio.Scanner) (bytes uint64, ok bool) {
	for lines.Scan() {
		rest, found := strings.CutPrefix(lines.Text(), "MemAvailable:")
		if !found {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		return kb * 1024, err == nil
	}
	return 0, false
}
