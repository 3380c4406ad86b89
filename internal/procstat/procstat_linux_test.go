package procstat

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
)

// TestReadThisThread reads the live line of the thread running the test,
// which is running as it reads it.
func TestReadThisThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := syscall.Gettid()
	s, err := Read("/proc/self/task", tid)
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != tid || s.State != 'R' || s.Comm == "" {
		t.Errorf("this thread: %+v, want thread %d running", s, tid)
	}
}

func TestStoppedAndRunning(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to start: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	pids := []int{pid, os.Getpid()}
	wait.For(t, 5*time.Second, "sleep to sleep", func() bool { return State(pid) == 'S' })
	if !NoneStopped(pids) || AllStopped(pids) {
		t.Errorf("running: none stopped %v, all stopped %v", NoneStopped(pids), AllStopped(pids))
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "sleep stopped", func() bool { return AllStopped(pids[:1]) })
	if NoneStopped(pids) || AllStopped(pids) {
		t.Errorf("one of two stopped: none stopped %v, all stopped %v", NoneStopped(pids), AllStopped(pids))
	}
	if AllStopped(nil) || NoneStopped(nil) {
		t.Error("no processes counted as all or none stopped")
	}
	if State(1<<30) != 0 || NoneStopped([]int{1 << 30}) {
		t.Error("a process that is not there")
	}
}
