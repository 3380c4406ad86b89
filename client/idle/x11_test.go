//go:build linux

package idle

import (
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/internal/xvfbtest"
)

// TestX11InputOnXvfb types on a real X server and reads the idle time back
// through the screen-saver extension.
func TestX11InputOnXvfb(t *testing.T) {
	display := xvfbtest.Start(t)
	x := newX11Input(display)
	defer x.close()
	first, ok := x.LastInput(time.Now())
	if !ok {
		t.Fatalf("no idle time from %s", display)
	}
	// Wait until the display has been idle a while, so the move is seen.
	wait.For(t, 10*time.Second, "the display idle for 300ms", func() bool {
		now := time.Now()
		last, _ := x.LastInput(now)
		return now.Sub(last) >= 300*time.Millisecond
	})
	moved := time.Now()
	xvfbtest.Move(t, display, 17, 42)
	last, ok := x.LastInput(time.Now())
	if !ok || last.Before(moved.Add(-50*time.Millisecond)) {
		t.Fatalf("after xdotool: last input %v before the move (first reading %v)", moved.Sub(last), first)
	}
	if !x.working() {
		t.Error("not working after a reply")
	}
}
