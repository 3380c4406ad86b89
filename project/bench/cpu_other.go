//go:build !unix

package bench

import "time"

// ProcessCPU reports that the CPU time of the process is not known here.
func ProcessCPU() (time.Duration, bool) { return 0, false }
