package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestSecondDaemonOnOneDataDirRefused: a second daemon on a data directory
// in use says who holds it and changes nothing there.
func TestSecondDaemonOnOneDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	first, err := New(Config{DataDir: dir, Worker: testWorker(t)})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	_, err = New(Config{DataDir: dir, Worker: testWorker(t), Name: "other"})
	var locked *LockedError
	if !errors.As(err, &locked) || locked.PID != os.Getpid() || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) ||
		!strings.Contains(err.Error(), "another --data") {
		t.Fatalf("second daemon: %v", err)
	}
	if after := snapshotDir(t, dir); after != before {
		t.Errorf("the refused daemon changed the data directory:\n%s\nthen\n%s", before, after)
	}
	first.Close()
	second, err := New(Config{DataDir: dir, Worker: testWorker(t)})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	second.Close()
}

// TestDataDirOfAnotherUserRefused: a data directory, or a file in it, that
// belongs to another user is refused before anything is written.
func TestDataDirOfAnotherUserRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("ownership is an access list on Windows")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	const other = 54321
	for _, name := range []string{".", "host.json", stateFile} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			os.Mkdir(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "host.json"), wu.Encode(identity{ID: "h0123456789abcdef", Name: "x"}), 0o600)
			os.WriteFile(filepath.Join(dir, stateFile), []byte("{}"), 0o600)
			if err := os.Lchown(filepath.Join(dir, name), other, other); err != nil {
				t.Fatal(err)
			}
			before := snapshotDir(t, dir)
			_, err := New(Config{DataDir: dir, Worker: testWorker(t)})
			if err == nil || !strings.Contains(err.Error(), "belongs to uid 54321") || !strings.Contains(err.Error(), "changes nothing") ||
				!strings.Contains(err.Error(), "chown -R root "+dir) {
				t.Fatalf("data directory of another user: %v", err)
			}
			if after := snapshotDir(t, dir); after != before {
				t.Errorf("changed:\n%s\nthen\n%s", before, after)
			}
			if _, err := Attach(context.Background(), AttachConfig{DataDir: dir, URL: "nats://127.0.0.1:1", AccountKey: "key-0123456789abcdef"}); err == nil || !strings.Contains(err.Error(), "belongs to") {
				t.Errorf("attach into it: %v", err)
			}
		})
	}
}

// snapshotDir lists a directory's files with their sizes and modes.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		body := ""
		if !info.IsDir() {
			c, _ := os.ReadFile(p)
			body = string(c)
		}
		b.WriteString(rel + " " + info.Mode().String() + " " + strconv.Quote(body) + "\n")
		return nil
	})
	return b.String()
}

// TestWaitsForAttach: a daemon with nothing attached runs, serves its
// control API, and computes as soon as a project is attached through it.
func TestWaitsForAttach(t *testing.T) {
	proj := startProject(t)
	proj.submit(t, "later", wu.Limits{MemoryBytes: 16 << 20}, []string{"out", "x"})
	dir := t.TempDir()
	d := runDaemon(t, Config{DataDir: dir, CPUs: 1, Monitor: &fakeObserver{}, Prefs: quickPrefs()})
	var cl *control.Client
	wait.For(t, 10*time.Second, "the control API", func() bool {
		var err error
		cl, err = control.Dial(dir)
		return err == nil
	})
	ctx := context.Background()
	st, err := cl.Status(ctx)
	if err != nil || st.Projects != 0 {
		t.Fatalf("status of a client with nothing attached: %+v, %v", st, err)
	}
	attached := time.Now()
	if err := cl.Attach(ctx, proj.srv.ClientURL(), 0); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the batch done", func() bool { return proj.batch(t, "later").Done() })
	t.Logf("attached to done in %v", time.Since(attached).Round(time.Millisecond))
	if ps := d.Projects(); len(ps) != 1 || ps[0].URL != proj.srv.ClientURL() {
		t.Errorf("projects %+v", ps)
	}
}
