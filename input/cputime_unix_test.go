//go:build unix

package input

import (
	"syscall"
	"time"
)

// processCPUTime is the user + system CPU time of this process so far (0 where unknown).
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
