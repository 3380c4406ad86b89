//go:build !unix

package bench

import "time"

// selfCPU is not measured here: ratios then compare wall times.
func selfCPU() time.Duration { return 0 }
