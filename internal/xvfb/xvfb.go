// Package xvfb starts a virtual X display (Xvfb) and gives it input with
// xdotool, so that idle detection can be tried against a real X server: by
// the tests (through xvfbtest) and by `momonga bench impact`.
package xvfb

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/screensaver"
	"github.com/jezek/xgb/xproto"
)

// ErrMissing is returned when Xvfb or xdotool is not installed.
var ErrMissing = errors.New("Xvfb and xdotool are needed (apt-get install xvfb xdotool)")

// Display is a running Xvfb.
type Display struct {
	Name string // ":N"
	cmd  *exec.Cmd
}

// Available reports whether both programs are installed.
func Available() bool {
	for _, tool := range []string{"Xvfb", "xdotool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false
		}
	}
	return true
}

// Start starts Xvfb on a free display with a small screen.
func Start() (*Display, error) { return StartScreen(320, 240) }

// StartScreen starts Xvfb on a free display with a screen of width×height
// at depth 24.
func StartScreen(width, height int) (*Display, error) {
	if !Available() {
		return nil, ErrMissing
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// -displayfd makes Xvfb pick a free display and write its number once it
	// accepts connections.
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-nolisten", "tcp", "-screen", "0", fmt.Sprintf("%dx%dx24", width, height))
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start Xvfb: %w", err)
	}
	w.Close()
	d := &Display{cmd: cmd}
	number := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		number <- strings.TrimSpace(line)
	}()
	select {
	case n := <-number:
		if n == "" {
			d.Close()
			return nil, errors.New("Xvfb did not start")
		}
		d.Name = ":" + n
		return d, nil
	case <-time.After(30 * time.Second):
		d.Close()
		return nil, errors.New("Xvfb did not start within 30 s")
	}
}

// Move moves the pointer with xdotool (through XTest): user input as the X
// server sees it.
func (d *Display) Move(x, y int) error {
	cmd := exec.Command("xdotool", "mousemove", strconv.Itoa(x), strconv.Itoa(y))
	cmd.Env = append(os.Environ(), "DISPLAY="+d.Name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("xdotool: %w: %s", err, out)
	}
	return nil
}

// Close stops Xvfb.
func (d *Display) Close() {
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
}

// LastInput asks the X server when it last saw input (the screen-saver
// extension's idle time), which dates an input more closely than the start
// or the end of the xdotool run that made it.
func (d *Display) LastInput() (time.Time, error) {
	conn, err := xgb.NewConnDisplay(d.Name)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	if err := screensaver.Init(conn); err != nil {
		return time.Time{}, err
	}
	root := xproto.Drawable(xproto.Setup(conn).DefaultScreen(conn).Root)
	reply, err := screensaver.QueryInfo(conn, root).Reply()
	if err != nil {
		return time.Time{}, err
	}
	return time.Now().Add(-time.Duration(reply.MsSinceUserInput) * time.Millisecond), nil
}
