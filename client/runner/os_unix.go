//go:build unix

package runner

import (
	"os"
	"syscall"
	"time"
)

// suspend stops the worker process where it stands; the kernel keeps it off
// the CPU until resume, and nothing inside it can notice or refuse.
func suspend(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

func resume(p *os.Process) error { return p.Signal(syscall.SIGCONT) }

// selfCPU is the user and system CPU time this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// workerAttr puts the worker in its own process group, so that a Ctrl-C or
// Ctrl-Z typed at a daemon running in a terminal reaches the daemon only,
// which then stops or suspends its workers itself.
func workerAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
