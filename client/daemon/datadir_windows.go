package daemon

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// The lock covers a byte far past the process id, so that a second client
// can still read who holds it: Windows' locks keep others from reading the
// bytes they cover.
const lockOffset = 1 << 30

func tryLock(f *os.File) error {
	ol := &windows.Overlapped{Offset: lockOffset}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLockHeld
	}
	return err
}

func unlock(f *os.File) {
	_ = windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &windows.Overlapped{Offset: lockOffset})
}

// checkOwner trusts the directory's access control list on Windows, where
// the service's directory is the system's and a person's is in their
// profile.
func checkOwner(string) error { return nil }
