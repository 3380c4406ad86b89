//go:build !linux

package runner

import (
	"errors"
	"time"
)

// lowerPriority does nothing here yet: the worker runs at the daemon's
// priority.
func lowerPriority() error { return nil }

// processCPU is not available while the process runs; Result.CPUSeconds
// still gives it once the process has ended.
func processCPU(int) (time.Duration, error) { return 0, errors.ErrUnsupported }
