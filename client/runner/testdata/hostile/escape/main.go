// Command escape tries every way out of its directory that WASI offers,
// calling wasi_snapshot_preview1 directly so that neither Go's path handling
// nor its error mapping hides what the host answered. It prints one line per
// attempt and exits 3 when every attempt was refused, 0 when one got through.
//
// The test plants two symlinks in the directory before the run, as a badly
// unpacked input might: planted -> ../canary and planteddir -> ../outside.
package main

import (
	"fmt"
	"os"
	"unsafe"
)

//go:wasmimport wasi_snapshot_preview1 path_open
func pathOpen(fd, dirflags int32, path unsafe.Pointer, pathLen, oflags int32, rightsBase, rightsInheriting uint64, fdflags int32, opened unsafe.Pointer) int32

//go:wasmimport wasi_snapshot_preview1 path_symlink
func pathSymlink(old unsafe.Pointer, oldLen, fd int32, new unsafe.Pointer, newLen int32) int32

//go:wasmimport wasi_snapshot_preview1 path_link
func pathLink(oldFD, oldFlags int32, old unsafe.Pointer, oldLen, newFD int32, new unsafe.Pointer, newLen int32) int32

//go:wasmimport wasi_snapshot_preview1 path_rename
func pathRename(fd int32, old unsafe.Pointer, oldLen, newFD int32, new unsafe.Pointer, newLen int32) int32

//go:wasmimport wasi_snapshot_preview1 path_create_directory
func pathCreateDirectory(fd int32, path unsafe.Pointer, pathLen int32) int32

//go:wasmimport wasi_snapshot_preview1 path_unlink_file
func pathUnlinkFile(fd int32, path unsafe.Pointer, pathLen int32) int32

//go:wasmimport wasi_snapshot_preview1 path_filestat_get
func pathFilestatGet(fd, flags int32, path unsafe.Pointer, pathLen int32, buf unsafe.Pointer) int32

//go:wasmimport wasi_snapshot_preview1 fd_read
func fdRead(fd int32, iovs unsafe.Pointer, iovsLen int32, nread unsafe.Pointer) int32

//go:wasmimport wasi_snapshot_preview1 fd_close
func fdClose(fd int32) int32

const (
	root         = 3 // the first preopen, the task directory
	follow       = 1 // lookupflags.symlink_follow
	oCreat       = 1
	oTrunc       = 8
	allRights    = ^uint64(0)
	errnoSuccess = 0
)

func ptr(s string) (unsafe.Pointer, int32) {
	b := []byte(s)
	if len(b) == 0 {
		b = []byte{0}
		return unsafe.Pointer(&b[0]), 0
	}
	return unsafe.Pointer(&b[0]), int32(len(s))
}

var escaped bool

func report(name string, errno int32, got string) {
	if errno == errnoSuccess {
		escaped = true
		fmt.Printf("%s: ALLOWED %q\n", name, got)
		return
	}
	fmt.Printf("%s: refused errno=%d\n", name, errno)
}

func open(name string, dirflags int32, path string, oflags int32) {
	p, n := ptr(path)
	var fd int32
	errno := pathOpen(root, dirflags, p, n, oflags, allRights, allRights, 0, unsafe.Pointer(&fd))
	got := ""
	if errno == errnoSuccess {
		buf := make([]byte, 256)
		iov := [2]uint32{uint32(uintptr(unsafe.Pointer(&buf[0]))), uint32(len(buf))}
		var nread uint32
		fdRead(fd, unsafe.Pointer(&iov), 1, unsafe.Pointer(&nread))
		got = string(buf[:nread])
		fdClose(fd)
	}
	report(name, errno, got)
}

func stat(name string, flags int32, path string) {
	p, n := ptr(path)
	var buf [64]byte
	report(name, pathFilestatGet(root, flags, p, n, unsafe.Pointer(&buf)), "")
}

func symlink(name, target, link string) {
	t, tn := ptr(target)
	l, ln := ptr(link)
	report(name, pathSymlink(t, tn, root, l, ln), "")
}

func hardlink(name, from, to string) {
	f, fn := ptr(from)
	t, tn := ptr(to)
	report(name, pathLink(root, follow, f, fn, root, t, tn), "")
}

func rename(name, from, to string) {
	f, fn := ptr(from)
	t, tn := ptr(to)
	report(name, pathRename(root, f, fn, root, t, tn), "")
}

func mkdir(name, path string) {
	p, n := ptr(path)
	report(name, pathCreateDirectory(root, p, n), "")
}

func unlink(name, path string) {
	p, n := ptr(path)
	report(name, pathUnlinkFile(root, p, n), "")
}

func goRead(name, path string) {
	b, err := os.ReadFile(path)
	if err == nil {
		escaped = true
		fmt.Printf("%s: ALLOWED %q\n", name, b)
		return
	}
	fmt.Printf("%s: refused %v\n", name, err)
}

func main() {
	// Something of its own to link and rename; this much must work.
	if err := os.WriteFile("/own.txt", []byte("mine"), 0o644); err != nil {
		fmt.Println("setup:", err)
		os.Exit(1)
	}
	if err := os.Mkdir("/sub", 0o755); err != nil {
		fmt.Println("setup:", err)
		os.Exit(1)
	}

	open("open ../canary", 0, "../canary", 0)
	open("open /etc/passwd", 0, "/etc/passwd", 0)
	open("open sub/../../canary", 0, "sub/../../canary", 0)
	open("open planted", follow, "planted", 0)
	open("open planteddir/canary", follow, "planteddir/canary", 0)
	open("create ../escaped", 0, "../escaped", oCreat|oTrunc)
	open("create planteddir/new", 0, "planteddir/new", oCreat|oTrunc)
	open("truncate planted", follow, "planted", oTrunc)
	stat("stat ../canary", follow, "../canary")
	stat("stat planted", follow, "planted")
	stat("stat planteddir/canary", 0, "planteddir/canary")
	mkdir("mkdir ../newdir", "../newdir")
	mkdir("mkdir planteddir/newdir", "planteddir/newdir")
	symlink("symlink link -> ../canary", "../canary", "link")
	symlink("symlink abslink -> /etc/passwd", "/etc/passwd", "abslink")
	symlink("symlink sub/link -> ../../canary", "../../canary", "sub/link")
	hardlink("hardlink own.txt -> hard", "own.txt", "hard")
	hardlink("hardlink ../canary -> hard2", "../canary", "hard2")
	hardlink("hardlink planted -> hard3", "planted", "hard3")
	rename("rename own.txt -> ../moved", "own.txt", "../moved")
	rename("rename own.txt -> planteddir/moved", "own.txt", "planteddir/moved")
	rename("rename . -> sub/root", ".", "sub/root")
	unlink("unlink ../canary", "../canary")
	unlink("unlink planteddir/canary", "planteddir/canary")
	goRead("go read /etc/passwd", "/etc/passwd")
	goRead("go read ../canary", "../canary")
	goRead("go read /../../canary", "/../../canary")

	if escaped {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "every escape was refused")
	os.Exit(3)
}
