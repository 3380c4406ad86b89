package procstat

import (
	"runtime"
	"syscall"
	"testing"
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
