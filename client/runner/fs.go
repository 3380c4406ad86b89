package runner

import (
	"io/fs"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	wazerosys "github.com/tetratelabs/wazero/sys"
)

// taskFS is the task's private directory as the guest sees it. wazero's own
// DirFS already refuses ".." and absolute paths, but it lets the guest create
// a symlink with a relative target that the host kernel then follows out of
// the directory (NOTES.md, "Running untrusted wasm safely"). taskFS closes
// that hole: no symlink or hard link can be made, no symlink is ever
// followed (not even one that was in the directory before the task ran), and
// path checks are repeated here so the jail does not rest on wazero alone.
type taskFS struct {
	experimentalsys.FS // sysfs.DirFS of the task directory
	hooks              *fsHooks
}

// newTaskFS returns the task directory dir as the guest's file system;
// hooks, which may be nil, watch it for checkpoints (fs_hooks.go).
func newTaskFS(dir string, hooks *fsHooks) experimentalsys.FS {
	return taskFS{FS: sysfs.DirFS(dir), hooks: hooks}
}

// isRoot reports whether a guest path names the task directory itself.
func isRoot(path string) bool {
	return path == "" || path == "." || path == "/"
}

// check refuses a path that could name something outside the directory and
// one whose parent directories include a symlink. When followLast is set, the
// last element must not be a symlink either, because the operation would
// follow it (stat, chmod, utimens, open on systems without O_NOFOLLOW).
func (t taskFS) check(path string, followLast bool) experimentalsys.Errno {
	if isRoot(path) {
		return 0
	}
	if strings.HasPrefix(path, "/") || strings.ContainsRune(path, 0) || strings.Contains(path, "\\") {
		return experimentalsys.EPERM
	}
	elems := strings.Split(strings.TrimSuffix(path, "/"), "/")
	for _, e := range elems {
		if e == ".." {
			return experimentalsys.EPERM
		}
	}
	last := len(elems) - 1
	if followLast {
		last = len(elems)
	}
	for i := 1; i <= last; i++ {
		st, errno := t.FS.Lstat(strings.Join(elems[:i], "/"))
		if errno == experimentalsys.ENOENT {
			// Nothing further along can exist, so nothing can be followed;
			// the operation itself reports the missing file.
			return 0
		}
		if errno != 0 {
			return errno
		}
		if st.Mode&fs.ModeSymlink != 0 {
			return experimentalsys.ELOOP
		}
	}
	return 0
}

// checkChange is check for operations that alter an entry: the task directory
// itself must stay where it is.
func (t taskFS) checkChange(path string) experimentalsys.Errno {
	if isRoot(path) {
		return experimentalsys.EPERM
	}
	return t.check(path, false)
}

func (t taskFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if errno := t.check(path, true); errno != 0 {
		return nil, errno
	}
	// O_NOFOLLOW closes the window between the check and the open on the
	// systems that have it.
	f, errno := t.FS.OpenFile(path, flag|experimentalsys.O_NOFOLLOW, perm)
	if errno == 0 && t.hooks != nil && !isRoot(path) {
		f = t.hooks.opened(f)
	}
	return f, errno
}

func (t taskFS) Lstat(path string) (wazerosys.Stat_t, experimentalsys.Errno) {
	if errno := t.check(path, false); errno != 0 {
		return wazerosys.Stat_t{}, errno
	}
	return t.FS.Lstat(path)
}

func (t taskFS) Stat(path string) (wazerosys.Stat_t, experimentalsys.Errno) {
	if errno := t.check(path, true); errno != 0 {
		return wazerosys.Stat_t{}, errno
	}
	return t.FS.Stat(path)
}

func (t taskFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	if errno := t.checkChange(path); errno != 0 {
		return errno
	}
	return t.FS.Mkdir(path, perm)
}

func (t taskFS) Chmod(path string, perm fs.FileMode) experimentalsys.Errno {
	if errno := t.check(path, true); errno != 0 {
		return errno
	}
	return t.FS.Chmod(path, perm)
}

func (t taskFS) Rename(from, to string) experimentalsys.Errno {
	if errno := t.checkChange(from); errno != 0 {
		return errno
	}
	if errno := t.checkChange(to); errno != 0 {
		return errno
	}
	errno := t.FS.Rename(from, to)
	if errno == 0 && t.hooks != nil {
		t.hooks.renamed(to)
	}
	return errno
}

func (t taskFS) Rmdir(path string) experimentalsys.Errno {
	if errno := t.checkChange(path); errno != 0 {
		return errno
	}
	return t.FS.Rmdir(path)
}

func (t taskFS) Unlink(path string) experimentalsys.Errno {
	if errno := t.checkChange(path); errno != 0 {
		return errno
	}
	return t.FS.Unlink(path)
}

// Link is refused: a hard link made by the guest serves no computation, and
// refusing it removes any question of which files it could reach.
func (t taskFS) Link(_, _ string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

// Symlink is refused: the host kernel, not wazero, resolves the target of a
// symlink, so a relative target such as ../../etc/passwd would leave the
// directory the next time anything followed it.
func (t taskFS) Symlink(_, _ string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

func (t taskFS) Readlink(path string) (string, experimentalsys.Errno) {
	if errno := t.check(path, false); errno != 0 {
		return "", errno
	}
	return t.FS.Readlink(path)
}

func (t taskFS) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	if errno := t.check(path, true); errno != 0 {
		return errno
	}
	return t.FS.Utimens(path, atim, mtim)
}
