//go:build unix

package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

func tryLock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLockHeld
	}
	return err
}

func unlock(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// checkOwner refuses a data directory, or a file of it, that belongs to
// another user than the one running the client.
func checkOwner(dir string) error {
	me := os.Geteuid()
	for _, name := range ownedFiles {
		p := filepath.Join(dir, name)
		info, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || int(st.Uid) == me {
			continue
		}
		owner, self := userName(int(st.Uid)), userName(me)
		return fmt.Errorf("%s belongs to %s, but this client runs as %s: files it wrote there would lock the other out, so it stops here and changes nothing. "+
			"Run the client as %s (for the system service: `sudo systemctl start momonga`), or, if the directory is this user's, give it back with `sudo chown -R %s %s`",
			p, owner.display, self.display, owner.name, self.name, dir)
	}
	return nil
}

// account is a user as messages name them: display in prose, name in a
// command.
type account struct{ display, name string }

func userName(uid int) account {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return account{fmt.Sprintf("%s (uid %d)", u.Username, uid), u.Username}
	}
	return account{fmt.Sprintf("uid %d", uid), strconv.Itoa(uid)}
}
