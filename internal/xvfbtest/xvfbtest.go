// Package xvfbtest gives tests a virtual X display (see xvfb). Tests skip
// when Xvfb or xdotool is not installed (.ci/run installs them).
package xvfbtest

import (
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/xvfb"
)

// Start starts Xvfb and returns its name (":N"); the display is stopped
// when the test ends.
func Start(t testing.TB) string { return StartScreen(t, 320, 240) }

// StartScreen is Start with a screen of width×height.
func StartScreen(t testing.TB, width, height int) string {
	t.Helper()
	if !xvfb.Available() {
		t.Skip(xvfb.ErrMissing)
	}
	d, err := xvfb.StartScreen(width, height)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d.Name
}

// Move moves the pointer on the display, which is user input as the X
// server sees it, and returns when the server saw it.
func Move(t testing.TB, display string, x, y int) time.Time {
	t.Helper()
	d := &xvfb.Display{Name: display}
	if err := d.Move(x, y); err != nil {
		t.Fatal(err)
	}
	at, err := d.LastInput()
	if err != nil {
		t.Fatal(err)
	}
	return at
}
