//go:build !unix

package input

import "time"

// processCPUTime is the user + system CPU time of this process so far (0 where unknown).
func processCPUTime() time.Duration { return 0 }
