package idle

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// privateBus runs a D-Bus daemon of the test's own and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon not installed (Debian package dbus-daemon)")
	}
	addr := "unix:path=" + filepath.Join(t.TempDir(), "bus")
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--nopidfile", "--address="+addr, "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	return strings.TrimSpace(line)
}

// fakeLogind is logind's manager on a bus, with the idle hint the test sets.
type fakeLogind struct{ props *prop.Properties }

func startFakeLogind(t *testing.T, addr string) *fakeLogind {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if reply, err := conn.RequestName(logindService, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", logindService, reply, err)
	}
	props, err := prop.Export(conn, logindPath, prop.Map{logindManager: {
		"IdleHint":      {Value: false, Writable: true, Emit: prop.EmitFalse},
		"IdleSinceHint": {Value: uint64(0), Writable: true, Emit: prop.EmitFalse},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeLogind{props: props}
}

func (f *fakeLogind) set(idle bool, since time.Time) {
	var us uint64
	if !since.IsZero() {
		us = uint64(since.UnixMicro())
	}
	f.props.SetMust(logindManager, "IdleHint", idle)
	f.props.SetMust(logindManager, "IdleSinceHint", us)
}

// TestLogindIdleHintOverDBus reads logind's idle hint the way a system
// service does: from the manager, over the bus, with no session of its own.
func TestLogindIdleHintOverDBus(t *testing.T) {
	addr := privateBus(t)
	logind := startFakeLogind(t, addr)
	l := &logindInput{every: 5 * time.Second, wanted: func() bool { return true },
		connect: func(opts ...dbus.ConnOption) (*dbus.Conn, error) { return dbus.Connect(addr, opts...) }}
	defer l.close()
	now := time.Now()

	if _, ok := l.LastInput(now); ok {
		t.Error("a hint no desktop ever set was taken as known")
	}
	// The person is at a session: the hint says not idle.
	logind.set(false, now.Add(-time.Minute))
	now = now.Add(5 * time.Second)
	if got, ok := l.LastInput(now); !ok || !got.Equal(now) {
		t.Errorf("not idle: last input %v (%v), want now %v", got, ok, now)
	}
	// Every session idle for ten minutes.
	since := now.Add(-10 * time.Minute).Truncate(time.Microsecond)
	logind.set(true, since)
	if got, _ := l.LastInput(now.Add(time.Second)); !got.Equal(now.Add(time.Second)) {
		t.Errorf("asked again within %v: %v", l.every, got)
	}
	now = now.Add(5 * time.Second)
	if got, ok := l.LastInput(now); !ok || !got.Equal(since) {
		t.Errorf("idle: last input %v (%v), want %v", got, ok, since)
	}
	// Not wanted (a display or the input devices can be read): not asked.
	l.wanted = func() bool { return false }
	if _, ok := l.LastInput(now.Add(time.Minute)); ok {
		t.Error("asked while the precise sources see the person")
	}
}

func TestLogindAbsent(t *testing.T) {
	addr := privateBus(t)
	connects := 0
	l := &logindInput{every: time.Millisecond, wanted: func() bool { return true },
		connect: func(opts ...dbus.ConnOption) (*dbus.Conn, error) { connects++; return dbus.Connect(addr, opts...) }}
	defer l.close()
	now := time.Now()
	for i := range 3 {
		if _, ok := l.LastInput(now.Add(time.Duration(i) * time.Second)); ok {
			t.Error("an answer from a bus without logind")
		}
	}
	if connects != 1 || !l.absent {
		t.Errorf("a bus without logind: %d connections, absent %v", connects, l.absent)
	}
}
