package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A data directory belongs to one daemon at a time: two would ask for work
// as the same host, run its tasks twice and overwrite each other's state.
// The daemon holds a lock on a file in it for its whole life; the file
// keeps the holder's process id for the message a second one prints. The
// file stays when the daemon stops: removing it would race a daemon that
// is starting.
const lockFile = "lock"

// LockedError is returned when another daemon runs on the data directory.
type LockedError struct {
	Dir string
	PID int // 0 when it could not be read
}

func (e *LockedError) Error() string {
	who := "another momonga client"
	if e.PID > 0 {
		who = fmt.Sprintf("another momonga client (process %d)", e.PID)
	}
	return fmt.Sprintf("%s already runs on the data directory %s: talk to it with `momonga status --data %s`, stop it first, or give this one another --data",
		who, e.Dir, e.Dir)
}

// dirLock is a held lock on a data directory.
type dirLock struct{ f *os.File }

// lockDataDir takes the data directory's lock, or says who holds it.
func lockDataDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := tryLock(f); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
		if errors.Is(err, errLockHeld) {
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	unlock(l.f)
	l.f.Close()
	l.f = nil
}

var errLockHeld = errors.New("held by another process")

// prepareDataDir makes the data directory, or checks that the one there is
// this user's to write: a client run as another user (root, say, on the
// service's directory) would leave files the service cannot read, and one
// run on a directory that is not its own would fail half-way through. It
// changes nothing when it refuses.
func prepareDataDir(dir string) error {
	if err := checkOwner(dir); err != nil {
		return err
	}
	for _, sub := range []string{"blobs", "slots", "reports", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	return nil
}

// ownedFiles are the files of the data directory that the daemon rewrites
// or must read: each must be its user's.
var ownedFiles = []string{".", "host.json", seedFile, attachmentFile, caFile, attachmentsDir, stateFile, statePrevFile,
	"prefs.json", "control.token", lockFile, "blobs", "slots", "reports", "cache"}
