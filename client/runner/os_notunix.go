//go:build !unix

package runner

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

var errNoSuspend = fmt.Errorf("suspending a worker process is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func suspend(*os.Process) error { return errNoSuspend }

func resume(*os.Process) error { return errNoSuspend }

// selfCPU is not measured here; a worker's CPU time still comes from its
// process state once it has ended.
func selfCPU() time.Duration { return 0 }

func workerAttr() *syscall.SysProcAttr { return nil }
