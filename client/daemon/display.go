package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/workunits/sdk"
)

// What the volunteer's displays (the web page, the screensaver, `momonga
// log`) need of the daemon beyond its state: the event log, news of
// changes, the apps' pictures, attaching with an account key.

// openEventLog starts the event log in the data directory: every record of
// LogLevel and above goes there as well as to the Logger.
func (d *Daemon) openEventLog() error {
	evl, err := eventlog.Open(d.cfg.DataDir, 0)
	if err != nil {
		return err
	}
	level := d.cfg.LogLevel
	if level == nil {
		level = slog.LevelInfo
	}
	d.evl = evl
	d.log = slog.New(slog.NewMultiHandler(d.cfg.Logger.Handler().WithAttrs([]slog.Attr{slog.String("host", d.id.ID)}), evl.Handler(level)))
	return nil
}

// event tells Config.Events, writes the event to the log and wakes the
// displays. It is called with the daemon's lock held and without.
func (d *Daemon) event(e Event) {
	d.cfg.Events(e)
	msg, level := eventMessage(e)
	attrs := make([]any, 0, 12)
	if e.Project != "" {
		attrs = append(attrs, "project", e.Project)
	}
	if e.Task != "" {
		attrs = append(attrs, "task", e.Task)
	}
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
	}
	if e.Pid != 0 {
		attrs = append(attrs, "pid", e.Pid)
	}
	if e.Seq != 0 {
		attrs = append(attrs, "checkpoint", e.Seq, "progress", strconv.FormatFloat(e.Progress, 'f', 3, 64))
	}
	d.log.Log(context.Background(), level, msg, attrs...)
	d.changed()
}

func eventMessage(e Event) (string, slog.Level) {
	switch e.Kind {
	case "assigned":
		return "task received", slog.LevelInfo
	case "started":
		return "task started", slog.LevelInfo
	case "resumed":
		return "task resumes from a checkpoint", slog.LevelInfo
	case "checkpoint":
		return "checkpoint sent to the project", slog.LevelInfo
	case "suspended":
		return "task suspended", slog.LevelInfo
	case "continued":
		return "task continues", slog.LevelInfo
	case "finished":
		if e.Failed {
			return "task failed", slog.LevelWarn
		}
		return "task finished", slog.LevelInfo
	case "reported":
		if e.Failed {
			return "result reported (failed)", slog.LevelWarn
		}
		return "result uploaded and reported", slog.LevelInfo
	case "aborted":
		return "task aborted by the project", slog.LevelWarn
	case "stopped":
		return "task stopped; it stays queued", slog.LevelInfo
	}
	return e.Kind, slog.LevelInfo
}

// changed wakes whoever waits in Changes. It takes a lock of its own, as
// it is called with the daemon's held and without.
func (d *Daemon) changed() {
	d.changesMu.Lock()
	defer d.changesMu.Unlock()
	if d.changes != nil {
		close(d.changes)
		d.changes = nil
	}
}

// Changes is closed at the next change a display shows.
func (d *Daemon) Changes() <-chan struct{} {
	d.changesMu.Lock()
	defer d.changesMu.Unlock()
	if d.changes == nil {
		d.changes = make(chan struct{})
	}
	return d.changes
}

// Log is the newest n entries of the event log (n <= 0: all).
func (d *Daemon) Log(n int) ([]eventlog.Entry, error) {
	return eventlog.Read(d.cfg.DataDir, n)
}

// Picture is the newest picture a running task's app published, as PNG.
func (d *Daemon) Picture(id string) ([]byte, error) {
	d.mu.Lock()
	var dir string
	for _, t := range d.tasks {
		if t.a.Task == id && t.state == stateRunning {
			dir = filepath.Join(d.slotDir(t), "root")
		}
	}
	d.mu.Unlock()
	if dir == "" {
		return nil, fmt.Errorf("%w: no task %s is running", control.ErrNoPicture, id)
	}
	png, _, err := runner.ReadPicture(dir)
	if errors.Is(err, runner.ErrNoPicture) {
		return nil, fmt.Errorf("%w: %v", control.ErrNoPicture, err)
	}
	return png, err
}

// hasPicture reports whether a running task's app has published a picture.
func (d *Daemon) hasPicture(t *task) bool {
	if t.state != stateRunning {
		return false
	}
	_, err := os.Lstat(filepath.Join(d.slotDir(t), "root", sdk.PictureFile))
	return err == nil
}

// fraction is the progress a task's app last reported, 0 to 1.
func (d *Daemon) fraction(t *task) float64 {
	b, err := os.ReadFile(filepath.Join(d.slotDir(t), "root", sdk.ProgressFile))
	if err != nil {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil || f < 0 || f > 1 {
		return 0
	}
	return f
}

// AttachAccount attaches this host to a project with the volunteer's
// account key, then takes the project on.
func (d *Daemon) AttachAccount(ctx context.Context, url, accountKey string, share float64) error {
	_, err := d.AttachWithKey(ctx, control.AttachRequest{URL: url, AccountKey: accountKey, Share: share})
	return err
}
