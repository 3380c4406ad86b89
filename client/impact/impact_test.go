package impact

import (
	"strings"
	"testing"
)

// TestPrint pins the lines the README quotes.
func TestPrint(t *testing.T) {
	var b strings.Builder
	Print(&b, Result{IdleRSSBytes: 10276044, IdleCPUPercent: 0.0081, IdleSeconds: 60.02, SuspendSeconds: 0.5934, Input: "x11", Tasks: 2,
		GoalRSSBytes: goalRSS, GoalCPUPercent: goalCPU, GoalSuspendSecs: goalSuspend})
	want := "idle resident memory:   9.8 MB  (goal ≤ 16 MB: ok)\n" +
		"idle CPU over 60 s:     0.008% of one core  (goal ≤ 0.05%: ok)\n" +
		"input to 2 tasks stopped: 593 ms via x11  (goal ≤ 1 s: ok)\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	Print(&b, Result{IdleRSSBytes: 10276044, IdleCPUPercent: 0.0081, IdleSeconds: 60.02, SuspendSeconds: 0.5934, Input: "x11", Tasks: 2,
		GoalRSSBytes: goalRSS, GoalCPUPercent: goalCPU, GoalSuspendSecs: goalSuspend,
		UnattachedRSSBytes: 9 << 20, UnattachedCPUPercent: 0.004, UnattachedSeconds: 60.01, AttachToRunSeconds: 1.26})
	if !strings.HasSuffix(b.String(), "nothing attached, idle:  9.0 MB, 0.004% of one core over 60 s  (goals as above: ok)\nattach to a task running: 1.3 s\n") {
		t.Errorf("printed\n%s", b.String())
	}
	b.Reset()
	Print(&b, Result{IdleRSSBytes: 20 << 20, IdleCPUPercent: 0.5, IdleSeconds: 3, SuspendSeconds: 1.2, Input: "tty", Tasks: 1,
		GoalRSSBytes: goalRSS, GoalCPUPercent: goalCPU, GoalSuspendSecs: goalSuspend})
	if got := strings.Count(b.String(), ": OVER)"); got != 3 {
		t.Errorf("%d figures marked OVER, want 3:\n%s", got, b.String())
	}
}
