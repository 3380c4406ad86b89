package daemon

import (
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/procstat"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/internal/xvfbtest"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestXvfbInputStopsTasksWithinASecond runs the daemon with this platform's
// idle sources against a real X server: running tasks must be stopped
// within a second of a pointer move sent with xdotool.
func TestXvfbInputStopsTasksWithinASecond(t *testing.T) {
	display := xvfbtest.Start(t)
	t.Setenv("DISPLAY", display)
	proj := startProject(t)
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"block"}, []string{"block"})
	p := quickPrefs()
	p.IdleMinutes = 1.0 / 60 // 1 s
	p.SuspendCPUPercent = 0  // other tests may be busy on this machine
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 2, Prefs: p, Control: "off"})

	wait.For(t, 30*time.Second, "two running tasks", func() bool { return len(workerPIDs(d)) == 2 && procstat.NoneStopped(workerPIDs(d)) })
	pids := workerPIDs(d)
	// Time runs from the input as the X server dated it: xdotool's own
	// start-up, slow on a loaded machine, is not the client's.
	moved := xvfbtest.Move(t, display, 100, 100)
	wait.For(t, 5*time.Second, "tasks stopped", func() bool { return procstat.AllStopped(pids) })
	took := time.Since(moved)
	t.Logf("xdotool input to all tasks stopped: %v", took)
	if took > time.Second {
		t.Errorf("tasks stopped %v after input, want within 1 s", took)
	}
	wait.For(t, 10*time.Second, "tasks resumed after the idle time", func() bool { return procstat.NoneStopped(pids) })
}
