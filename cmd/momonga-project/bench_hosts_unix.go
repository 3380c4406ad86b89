//go:build unix

package main

import "syscall"

// raiseFileLimit raises the limit on open files: to wantFiles where this
// process may raise the hard limit (as root), else the soft limit to the
// hard one.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return
	}
	if l.Max < wantFiles && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: wantFiles, Max: wantFiles}) == nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// wantFiles is enough open files for 10^5 hosts' connections in the bench
// and in the server it starts, which inherits the limit.
const wantFiles = 1 << 18
