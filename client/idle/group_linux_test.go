package idle

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The packages' service reads the input devices through the input group
// (root:input, 0660 on Linux). This is checked with a real process that is
// not root and has only that group, reading a device node stand-in (a FIFO
// with the same owner and mode) with the client's own source.

const helperEnv = "MOMONGA_IDLE_INPUT_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		inputHelper(dir)
		return
	}
	os.Exit(m.Run())
}

// inputHelper watches dir's devices and says whether it reads them and,
// once it does, when it saw input.
func inputHelper(dir string) {
	ev := newEvdevInput(dir, filepath.Join(dir, "devices"))
	ev.LastInput(time.Now())
	fmt.Println("reading", ev.reading())
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if t, ok := ev.LastInput(time.Now()); ok && ev.reading() {
			fmt.Println("input", t.UnixNano())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("no input")
}

func TestInputDevicesThroughAGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user with a group of its own")
	}
	const uid, inputGID = 54321, 54320
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		groups []uint32
		reads  bool
	}{{"in the group", []uint32{inputGID}, true}, {"not in the group", nil, false}} {
		t.Run(c.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "momonga-input-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			os.Chmod(dir, 0o755)
			list := "I: Bus=0011\nN: Name=\"keyboard\"\nH: Handlers=kbd event7\nB: EV=120013\n"
			os.WriteFile(filepath.Join(dir, "devices"), []byte(list), 0o644)
			dev := filepath.Join(dir, "event7")
			if err := syscall.Mkfifo(dev, 0o660); err != nil {
				t.Fatal(err)
			}
			os.Chown(dev, 0, inputGID)
			os.Chmod(dev, 0o660)
			// Held open for writing, so that the helper's open does not wait.
			w, err := os.OpenFile(dev, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			// The test binary's own directory is root's alone.
			body, err := os.ReadFile(exe)
			if err != nil {
				t.Fatal(err)
			}
			helper := filepath.Join(dir, "helper")
			if err := os.WriteFile(helper, body, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(helper)
			cmd.Env = append(os.Environ(), helperEnv+"="+dir)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: c.groups}}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			lines := bufio.NewScanner(out)
			lines.Scan()
			if got, want := lines.Text(), fmt.Sprint("reading ", c.reads); got != want {
				cmd.Process.Kill()
				t.Fatalf("the helper said %q, want %q", got, want)
			}
			if !c.reads {
				cmd.Process.Kill()
				return
			}
			typed := time.Now()
			w.Write(make([]byte, 24)) // one input event
			lines.Scan()
			var ns int64
			if _, err := fmt.Sscanf(lines.Text(), "input %d", &ns); err != nil || time.Unix(0, ns).Before(typed) {
				t.Errorf("after a key press the helper said %q", strings.TrimSpace(lines.Text()))
			}
		})
	}
}
