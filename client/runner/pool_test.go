//go:build linux

package runner

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
)

// TestWorkerPool runs tasks one after another in a pooled worker: they run
// in the same process, each with its own result; a task that is killed
// takes its process with it; an idle process ends after its time.
func TestWorkerPool(t *testing.T) {
	// Idle for a minute before ending: the tasks follow one another in
	// the warm process however slow a loaded machine is between them.
	w := testWorker(t, argWorker).Pooled(1, time.Minute)
	pid := 0
	for i, args := range [][]string{{"one"}, {"two", "three"}, {"four"}} {
		spec, tk := echoSpec(t, args...)
		p := start(t, w, context.Background(), spec)
		res := p.Wait()
		checkEcho(t, res, spec, args...)
		tk.checkHost(t)
		if i > 0 && p.Pid() != pid {
			t.Errorf("task %d ran in process %d, not in the warm one (%d)", i, p.Pid(), pid)
		}
		pid = p.Pid()
		if res.CPUSeconds <= 0 {
			t.Errorf("task %d: CPU time %v", i, res.CPUSeconds)
		}
	}
	// One idle for 200 ms ends.
	short := testWorker(t, argWorker).Pooled(1, 200*time.Millisecond)
	spec, _ := echoSpec(t, "five")
	p := start(t, short, context.Background(), spec)
	checkEcho(t, p.Wait(), spec, "five")
	wait.For(t, 5*time.Second, "the idle worker to end", func() bool { return short.Idle() == 0 && procGone(p.Pid()) })

	spec, _ = spinSpec(t, 60)
	p = start(t, w, context.Background(), spec)
	wait.For(t, 5*time.Second, "the spinning task to run", func() bool { return cpuTime(t, p) > 0 })
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if res := p.Wait(); res.Reason != StoppedByClient {
		t.Errorf("killed task: %q", res.Reason)
	}
	if w.Idle() != 0 {
		t.Error("a killed worker went back to the pool")
	}
	spec, _ = echoSpec(t, "after")
	if q := start(t, w, context.Background(), spec); q.Pid() == p.Pid() {
		t.Error("the next task ran in the killed process")
	} else {
		checkEcho(t, q.Wait(), spec, "after")
	}
}

// procGone reports whether the process has ended and been reaped.
func procGone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}
