// Package wasi is WASI preview 1 as momonga gives it to an app, written once
// above the engine (DESIGN.md §6): an engine that has no WASI of its own, or
// one that cannot be made to give a module exactly momonga's sandbox, binds
// these functions as the module's wasi_snapshot_preview1 imports.
//
// What a module sees is only what System is given: its arguments, stdin,
// stdout and stderr, a file system (the runner's task directory, which refuses
// every way out of it), virtual clocks and a random stream. There is no
// environment, no network and no real time, and a sleep returns at once, as
// under wazero's own WASI with the runner's settings, so that a task computes
// the same thing whichever engine runs it, and a checkpoint taken under one
// engine resumes under the other.
package wasi

import (
	"encoding/binary"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// ModuleName is the import module the functions are bound to.
const ModuleName = "wasi_snapshot_preview1"

// Config is what a module is given.
type Config struct {
	Args           []string  // argv, argv[0] first
	Stdin          io.Reader // nil: empty
	Stdout, Stderr io.Writer
	FS             experimentalsys.FS // preopened as "/" (fd 3)
	Walltime       func() (sec int64, nsec int32)
	Nanotime       func() int64
	Resolution     uint64 // of both clocks, in ns
	Random         io.Reader
}

// System is one module's WASI state: its configuration and its open files.
// It is used from the module's goroutine only.
type System struct {
	cfg   Config
	files map[uint32]*file
}

// file is an open descriptor.
type file struct {
	f        experimentalsys.File // nil for stdio
	r        io.Reader            // stdin
	w        io.Writer            // stdout, stderr
	path     string               // the guest path a directory was opened at, "" for the root
	dir      bool
	preopen  bool
	dirents  []experimentalsys.Dirent // a directory's entries, read when fd_readdir starts over
	direntOK bool
}

// The descriptors every module starts with.
const (
	fdStdin  = 0
	fdStdout = 1
	fdStderr = 2
	fdRoot   = 3
)

// New returns the WASI state of a module about to start.
func New(cfg Config) *System {
	s := &System{cfg: cfg, files: map[uint32]*file{}}
	stdin := cfg.Stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	s.files[fdStdin] = &file{r: stdin, preopen: true}
	s.files[fdStdout] = &file{w: cfg.Stdout, preopen: true}
	s.files[fdStderr] = &file{w: cfg.Stderr, preopen: true}
	if cfg.FS != nil {
		if root, errno := cfg.FS.OpenFile(".", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0); errno == 0 {
			s.files[fdRoot] = &file{f: root, dir: true, preopen: true}
		}
	}
	return s
}

// Close closes every file the module left open.
func (s *System) Close() {
	for fd, f := range s.files {
		if f.f != nil {
			f.f.Close()
		}
		delete(s.files, fd)
	}
}

// Function is one WASI function, for an engine to bind: its parameters are
// i32 or i64, and it returns an i32 errno unless NoResult (proc_exit, which
// ends the module by panicking with a *sys.ExitError, and never returns).
type Function struct {
	Name     string
	Params   []api.ValueType
	NoResult bool
	// Call runs the function on the module's memory as it is at the call.
	Call func(s *System, mem []byte, p []uint64) uint32
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// Functions is every function of WASI preview 1, in name order: the same
// names wazero's WASI provides, so that a module links under either engine
// or under neither.
func Functions() []Function {
	fns := []Function{
		{"args_get", []api.ValueType{i32, i32}, false, (*System).argsGet},
		{"args_sizes_get", []api.ValueType{i32, i32}, false, (*System).argsSizesGet},
		{"clock_res_get", []api.ValueType{i32, i32}, false, (*System).clockResGet},
		{"clock_time_get", []api.ValueType{i32, i64, i32}, false, (*System).clockTimeGet},
		{"environ_get", []api.ValueType{i32, i32}, false, (*System).success},
		{"environ_sizes_get", []api.ValueType{i32, i32}, false, (*System).environSizesGet},
		{"fd_advise", []api.ValueType{i32, i64, i64, i32}, false, (*System).fdAdvise},
		{"fd_allocate", []api.ValueType{i32, i64, i64}, false, (*System).fdAllocate},
		{"fd_close", []api.ValueType{i32}, false, (*System).fdClose},
		{"fd_datasync", []api.ValueType{i32}, false, (*System).fdDatasync},
		{"fd_fdstat_get", []api.ValueType{i32, i32}, false, (*System).fdFdstatGet},
		{"fd_fdstat_set_flags", []api.ValueType{i32, i32}, false, (*System).fdFdstatSetFlags},
		{"fd_fdstat_set_rights", []api.ValueType{i32, i64, i64}, false, (*System).nosys},
		{"fd_filestat_get", []api.ValueType{i32, i32}, false, (*System).fdFilestatGet},
		{"fd_filestat_set_size", []api.ValueType{i32, i64}, false, (*System).fdFilestatSetSize},
		{"fd_filestat_set_times", []api.ValueType{i32, i64, i64, i32}, false, (*System).fdFilestatSetTimes},
		{"fd_pread", []api.ValueType{i32, i32, i32, i64, i32}, false, (*System).fdPread},
		{"fd_prestat_dir_name", []api.ValueType{i32, i32, i32}, false, (*System).fdPrestatDirName},
		{"fd_prestat_get", []api.ValueType{i32, i32}, false, (*System).fdPrestatGet},
		{"fd_pwrite", []api.ValueType{i32, i32, i32, i64, i32}, false, (*System).fdPwrite},
		{"fd_read", []api.ValueType{i32, i32, i32, i32}, false, (*System).fdRead},
		{"fd_readdir", []api.ValueType{i32, i32, i32, i64, i32}, false, (*System).fdReaddir},
		{"fd_renumber", []api.ValueType{i32, i32}, false, (*System).fdRenumber},
		{"fd_seek", []api.ValueType{i32, i64, i32, i32}, false, (*System).fdSeek},
		{"fd_sync", []api.ValueType{i32}, false, (*System).fdSync},
		{"fd_tell", []api.ValueType{i32, i32}, false, (*System).fdTell},
		{"fd_write", []api.ValueType{i32, i32, i32, i32}, false, (*System).fdWrite},
		{"path_create_directory", []api.ValueType{i32, i32, i32}, false, (*System).pathCreateDirectory},
		{"path_filestat_get", []api.ValueType{i32, i32, i32, i32, i32}, false, (*System).pathFilestatGet},
		{"path_filestat_set_times", []api.ValueType{i32, i32, i32, i32, i64, i64, i32}, false, (*System).pathFilestatSetTimes},
		{"path_link", []api.ValueType{i32, i32, i32, i32, i32, i32, i32}, false, (*System).pathLink},
		{"path_open", []api.ValueType{i32, i32, i32, i32, i32, i64, i64, i32, i32}, false, (*System).pathOpen},
		{"path_readlink", []api.ValueType{i32, i32, i32, i32, i32, i32}, false, (*System).pathReadlink},
		{"path_remove_directory", []api.ValueType{i32, i32, i32}, false, (*System).pathRemoveDirectory},
		{"path_rename", []api.ValueType{i32, i32, i32, i32, i32, i32}, false, (*System).pathRename},
		{"path_symlink", []api.ValueType{i32, i32, i32, i32, i32}, false, (*System).pathSymlink},
		{"path_unlink_file", []api.ValueType{i32, i32, i32}, false, (*System).pathUnlinkFile},
		{"poll_oneoff", []api.ValueType{i32, i32, i32, i32}, false, (*System).pollOneoff},
		{"proc_exit", []api.ValueType{i32}, true, (*System).procExit},
		{"proc_raise", []api.ValueType{i32}, false, (*System).nosys},
		{"random_get", []api.ValueType{i32, i32}, false, (*System).randomGet},
		{"sched_yield", nil, false, (*System).success},
		{"sock_accept", []api.ValueType{i32, i32, i32}, false, (*System).sock},
		{"sock_recv", []api.ValueType{i32, i32, i32, i32, i32, i32}, false, (*System).sock},
		{"sock_send", []api.ValueType{i32, i32, i32, i32, i32}, false, (*System).sock},
		{"sock_shutdown", []api.ValueType{i32, i32}, false, (*System).sock},
	}
	sort.Slice(fns, func(a, b int) bool { return fns[a].Name < fns[b].Name })
	return fns
}

// WASI preview 1 errno values.
const (
	errnoSuccess     = 0
	errno2big        = 1
	errnoAcces       = 2
	errnoAgain       = 6
	errnoBadf        = 8
	errnoExist       = 20
	errnoFault       = 21
	errnoIntr        = 27
	errnoInval       = 28
	errnoIO          = 29
	errnoIsdir       = 31
	errnoLoop        = 32
	errnoNametoolong = 37
	errnoNoent       = 44
	errnoNosys       = 52
	errnoNotdir      = 54
	errnoNotempty    = 55
	errnoNotsock     = 57
	errnoNotsup      = 58
	errnoPerm        = 63
	errnoRange       = 65
	errnoRofs        = 66
	errnoSpipe       = 67
)

// toErrno maps the file system's errors to WASI's.
func toErrno(e experimentalsys.Errno) uint32 {
	switch e {
	case 0:
		return errnoSuccess
	case experimentalsys.EACCES:
		return errnoAcces
	case experimentalsys.EAGAIN:
		return errnoAgain
	case experimentalsys.EBADF:
		return errnoBadf
	case experimentalsys.EEXIST:
		return errnoExist
	case experimentalsys.EFAULT:
		return errnoFault
	case experimentalsys.EINTR:
		return errnoIntr
	case experimentalsys.EINVAL:
		return errnoInval
	case experimentalsys.EISDIR:
		return errnoIsdir
	case experimentalsys.ELOOP:
		return errnoLoop
	case experimentalsys.ENAMETOOLONG:
		return errnoNametoolong
	case experimentalsys.ENOENT:
		return errnoNoent
	case experimentalsys.ENOSYS:
		return errnoNosys
	case experimentalsys.ENOTDIR:
		return errnoNotdir
	case experimentalsys.ERANGE:
		return errnoRange
	case experimentalsys.ENOTEMPTY:
		return errnoNotempty
	case experimentalsys.ENOTSOCK:
		return errnoNotsock
	case experimentalsys.ENOTSUP:
		return errnoNotsup
	case experimentalsys.EPERM:
		return errnoPerm
	case experimentalsys.EROFS:
		return errnoRofs
	}
	return errnoIO
}

// view returns mem[off:off+n], or false when it is out of bounds.
func view(mem []byte, off, n uint32) ([]byte, bool) {
	end := uint64(off) + uint64(n)
	if end > uint64(len(mem)) {
		return nil, false
	}
	return mem[off:end], true
}

func putU32(mem []byte, off uint32, v uint32) bool {
	b, ok := view(mem, off, 4)
	if ok {
		binary.LittleEndian.PutUint32(b, v)
	}
	return ok
}

func putU64(mem []byte, off uint32, v uint64) bool {
	b, ok := view(mem, off, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}

func (s *System) success([]byte, []uint64) uint32 { return errnoSuccess }
func (s *System) nosys([]byte, []uint64) uint32   { return errnoNosys }

func (s *System) argsSizesGet(mem []byte, p []uint64) uint32 {
	size := 0
	for _, a := range s.cfg.Args {
		size += len(a) + 1
	}
	if !putU32(mem, uint32(p[0]), uint32(len(s.cfg.Args))) || !putU32(mem, uint32(p[1]), uint32(size)) {
		return errnoFault
	}
	return errnoSuccess
}

func (s *System) argsGet(mem []byte, p []uint64) uint32 {
	argv, buf := uint32(p[0]), uint32(p[1])
	for i, a := range s.cfg.Args {
		dst, ok := view(mem, buf, uint32(len(a))+1)
		if !ok || !putU32(mem, argv+4*uint32(i), buf) {
			return errnoFault
		}
		copy(dst, a)
		dst[len(a)] = 0
		buf += uint32(len(a)) + 1
	}
	return errnoSuccess
}

func (s *System) environSizesGet(mem []byte, p []uint64) uint32 {
	if !putU32(mem, uint32(p[0]), 0) || !putU32(mem, uint32(p[1]), 0) {
		return errnoFault
	}
	return errnoSuccess
}

// The clocks a module may read: the virtual wall clock and monotonic clock.
const (
	clockRealtime  = 0
	clockMonotonic = 1
)

func (s *System) clockResGet(mem []byte, p []uint64) uint32 {
	if id := uint32(p[0]); id != clockRealtime && id != clockMonotonic {
		return errnoInval
	}
	if !putU64(mem, uint32(p[1]), s.cfg.Resolution) {
		return errnoFault
	}
	return errnoSuccess
}

func (s *System) clockTimeGet(mem []byte, p []uint64) uint32 {
	var t uint64
	switch uint32(p[0]) {
	case clockRealtime:
		sec, nsec := s.cfg.Walltime()
		t = uint64(sec)*1e9 + uint64(nsec)
	case clockMonotonic:
		t = uint64(s.cfg.Nanotime())
	default:
		return errnoInval
	}
	if !putU64(mem, uint32(p[2]), t) {
		return errnoFault
	}
	return errnoSuccess
}

func (s *System) randomGet(mem []byte, p []uint64) uint32 {
	buf, ok := view(mem, uint32(p[0]), uint32(p[1]))
	if !ok {
		return errnoFault
	}
	if _, err := io.ReadFull(s.cfg.Random, buf); err != nil {
		return errnoIO
	}
	return errnoSuccess
}

func (s *System) procExit(_ []byte, p []uint64) uint32 {
	panic(sys.NewExitError(uint32(p[0])))
}

func (s *System) sock(_ []byte, p []uint64) uint32 {
	if _, ok := s.files[uint32(p[0])]; !ok {
		return errnoBadf
	}
	return errnoNotsock
}

// pollOneoff answers every subscription at once: a sleep takes no time (the
// clocks are virtual), stdin and files are always ready, as under wazero.
func (s *System) pollOneoff(mem []byte, p []uint64) uint32 {
	in, out, n := uint32(p[0]), uint32(p[1]), uint32(p[2])
	if n == 0 {
		return errnoInval
	}
	subs, ok := view(mem, in, 48*n)
	if !ok {
		return errnoFault
	}
	events, ok := view(mem, out, 32*n)
	if !ok {
		return errnoFault
	}
	if _, ok := view(mem, uint32(p[3]), 4); !ok {
		return errnoFault
	}
	const (
		eventClock   = 0
		eventFdRead  = 1
		eventFdWrite = 2
	)
	written := uint32(0)
	for i := uint32(0); i < n; i++ {
		sub := subs[48*i : 48*i+48]
		ev := events[32*written : 32*written+32]
		clear(ev)
		copy(ev[0:8], sub[0:8]) // userdata
		tag := sub[8]
		ev[10] = tag
		var errno uint32
		switch tag {
		case eventClock:
			if id := binary.LittleEndian.Uint32(sub[16:]); id != clockRealtime && id != clockMonotonic {
				errno = errnoInval
			}
		case eventFdRead, eventFdWrite:
			if _, ok := s.files[binary.LittleEndian.Uint32(sub[16:])]; !ok {
				errno = errnoBadf
			}
		default:
			errno = errnoInval
		}
		binary.LittleEndian.PutUint16(ev[8:], uint16(errno))
		written++
	}
	putU32(mem, uint32(p[3]), written)
	return errnoSuccess
}

// guestString reads a path argument.
func guestString(mem []byte, off, n uint32) (string, bool) {
	b, ok := view(mem, off, n)
	return string(b), ok
}

// lookup returns an open descriptor.
func (s *System) lookup(fd uint64) (*file, uint32) {
	f, ok := s.files[uint32(fd)]
	if !ok {
		return nil, errnoBadf
	}
	return f, errnoSuccess
}

// resolve turns a path relative to a directory descriptor into a path for
// the file system, which does the checking: an absolute path or one with ".."
// is left as it is, for the file system to refuse.
func (s *System) resolve(mem []byte, fd uint64, off, n uint64) (string, uint32) {
	d, errno := s.lookup(fd)
	if errno != 0 {
		return "", errno
	}
	if !d.dir {
		return "", errnoNotdir
	}
	path, ok := guestString(mem, uint32(off), uint32(n))
	if !ok {
		return "", errnoFault
	}
	if d.path == "" || strings.HasPrefix(path, "/") {
		return path, errnoSuccess
	}
	return d.path + "/" + path, errnoSuccess
}

// iovecs returns the buffers an iovec array names.
func iovecs(mem []byte, iovs, n uint32) ([][]byte, uint32) {
	table, ok := view(mem, iovs, 8*n)
	if !ok {
		return nil, errnoFault
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		b, ok := view(mem, binary.LittleEndian.Uint32(table[8*i:]), binary.LittleEndian.Uint32(table[8*i+4:]))
		if !ok {
			return nil, errnoFault
		}
		bufs[i] = b
	}
	return bufs, errnoSuccess
}

func (s *System) fdRead(mem []byte, p []uint64) uint32 {
	return s.read(mem, p[0], p[1], p[2], -1, p[3])
}

func (s *System) fdPread(mem []byte, p []uint64) uint32 {
	return s.read(mem, p[0], p[1], p[2], int64(p[3]), p[4])
}

// read reads into iovecs, at the file's offset, or at off when off >= 0,
// stopping at a short read.
func (s *System) read(mem []byte, fd, iovs, n uint64, off int64, nread uint64) uint32 {
	return s.transfer(mem, fd, iovs, n, nread, true, func(f *file, b []byte, done int) (int, uint32) {
		var k int
		var e experimentalsys.Errno
		switch {
		case f.dir:
			return 0, errnoIsdir
		case f.r != nil:
			if off >= 0 {
				return 0, errnoSpipe
			}
			var err error
			k, err = f.r.Read(b)
			if err != nil && err != io.EOF {
				e = experimentalsys.EIO
			}
		case f.f != nil && off >= 0:
			k, e = f.f.Pread(b, off+int64(done))
		case f.f != nil:
			k, e = f.f.Read(b)
		default:
			return 0, errnoBadf
		}
		return k, toErrno(e)
	})
}

func (s *System) fdWrite(mem []byte, p []uint64) uint32 {
	return s.write(mem, p[0], p[1], p[2], -1, p[3])
}

func (s *System) fdPwrite(mem []byte, p []uint64) uint32 {
	return s.write(mem, p[0], p[1], p[2], int64(p[3]), p[4])
}

// write writes iovecs at the file's offset, or at off when off >= 0. A
// writer may panic to stop the module (the runner's capped output does).
func (s *System) write(mem []byte, fd, iovs, n uint64, off int64, nwritten uint64) uint32 {
	return s.transfer(mem, fd, iovs, n, nwritten, false, func(f *file, b []byte, done int) (int, uint32) {
		var k int
		var e experimentalsys.Errno
		switch {
		case f.dir:
			return 0, errnoIsdir
		case f.w != nil:
			if off >= 0 {
				return 0, errnoSpipe
			}
			var err error
			if k, err = f.w.Write(b); err != nil {
				e = experimentalsys.EIO
			}
		case f.f != nil && off >= 0:
			k, e = f.f.Pwrite(b, off+int64(done))
		case f.f != nil:
			k, e = f.f.Write(b)
		default:
			return 0, errnoBadf
		}
		return k, toErrno(e)
	})
}

// transfer is what reading and writing share: it checks the descriptor,
// the iovecs and where the byte count goes, moves each buffer with step
// (given the bytes moved before it), and puts the count. An error ends the
// transfer and is the answer; with shortEnds, so does a buffer not filled
// (a short read), with the bytes moved so far.
func (s *System) transfer(mem []byte, fd, iovs, n, count uint64, shortEnds bool, step func(f *file, b []byte, done int) (k int, errno uint32)) uint32 {
	f, errno := s.lookup(fd)
	if errno != 0 {
		return errno
	}
	bufs, errno := iovecs(mem, uint32(iovs), uint32(n))
	if errno != 0 {
		return errno
	}
	if _, ok := view(mem, uint32(count), 4); !ok {
		return errnoFault
	}
	total := 0
	for _, b := range bufs {
		k, errno := step(f, b, total)
		if errno != 0 {
			return errno
		}
		total += k
		if shortEnds && k < len(b) {
			break
		}
	}
	putU32(mem, uint32(count), uint32(total))
	return errnoSuccess
}

func (s *System) fdClose(_ []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	delete(s.files, uint32(p[0]))
	if f.f != nil {
		return toErrno(f.f.Close())
	}
	return errnoSuccess
}

func (s *System) fdSync(_ []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 || f.f == nil {
		return errno
	}
	return toErrno(f.f.Sync())
}

func (s *System) fdDatasync(_ []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 || f.f == nil {
		return errno
	}
	return toErrno(f.f.Datasync())
}

func (s *System) fdAdvise(_ []byte, p []uint64) uint32 {
	if _, errno := s.lookup(p[0]); errno != 0 {
		return errno
	}
	if p[3] > 5 { // normal, sequential, random, willneed, dontneed, noreuse
		return errnoInval
	}
	return errnoSuccess
}

func (s *System) fdAllocate(_ []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	if f.f == nil || f.dir {
		return errnoBadf
	}
	st, e := f.f.Stat()
	if e != 0 {
		return toErrno(e)
	}
	if end := int64(p[1] + p[2]); end > st.Size {
		return toErrno(f.f.Truncate(end))
	}
	return errnoSuccess
}

// Rights, as wazero reports them.
const (
	rightFdDatasync          = 1 << 0
	rightFdRead              = 1 << 1
	rightFdSeek              = 1 << 2
	rightFdstatSetFlags      = 1 << 3
	rightFdSync              = 1 << 4
	rightFdTell              = 1 << 5
	rightFdWrite             = 1 << 6
	rightFdAdvise            = 1 << 7
	rightFdAllocate          = 1 << 8
	rightPathCreateDirectory = 1 << 9
	rightPathCreateFile      = 1 << 10
	rightPathLinkSource      = 1 << 11
	rightPathLinkTarget      = 1 << 12
	rightPathOpen            = 1 << 13
	rightFdReaddir           = 1 << 14
	rightPathReadlink        = 1 << 15
	rightPathRenameSource    = 1 << 16
	rightPathRenameTarget    = 1 << 17
	rightPathFilestatGet     = 1 << 18
	rightPathFilestatSetSize = 1 << 19
	rightPathFilestatSetTime = 1 << 20
	rightFdFilestatGet       = 1 << 21
	rightFdFilestatSetSize   = 1 << 22
	rightFdFilestatSetTimes  = 1 << 23
	rightPathSymlink         = 1 << 24
	rightPathRemoveDirectory = 1 << 25
	rightPathUnlinkFile      = 1 << 26
	rightPollFdReadwrite     = 1 << 27

	fileRights = rightFdDatasync | rightFdRead | rightFdSeek | rightFdstatSetFlags | rightFdSync | rightFdTell |
		rightFdWrite | rightFdAdvise | rightFdAllocate | rightFdFilestatGet | rightFdFilestatSetSize |
		rightFdFilestatSetTimes | rightPollFdReadwrite
	dirRights = rightFdDatasync | rightFdstatSetFlags | rightFdSync | rightPathCreateDirectory | rightPathCreateFile |
		rightPathLinkSource | rightPathLinkTarget | rightPathOpen | rightFdReaddir | rightPathReadlink |
		rightPathRenameSource | rightPathRenameTarget | rightPathFilestatGet | rightPathFilestatSetSize |
		rightPathFilestatSetTime | rightFdFilestatGet | rightFdFilestatSetTimes | rightPathSymlink |
		rightPathRemoveDirectory | rightPathUnlinkFile
)

// File types.
const (
	filetypeUnknown   = 0
	filetypeCharDev   = 2
	filetypeDirectory = 3
	filetypeRegular   = 4
	filetypeSymlink   = 7
)

func filetype(mode fs.FileMode) byte {
	switch {
	case mode.IsDir():
		return filetypeDirectory
	case mode.IsRegular():
		return filetypeRegular
	case mode&fs.ModeSymlink != 0:
		return filetypeSymlink
	case mode&fs.ModeCharDevice != 0:
		return filetypeCharDev
	}
	return filetypeUnknown
}

// Descriptor flags.
const (
	fdflagAppend   = 1
	fdflagNonblock = 4
)

func (s *System) fdFdstatGet(mem []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	buf, ok := view(mem, uint32(p[1]), 24)
	if !ok {
		return errnoFault
	}
	clear(buf)
	switch {
	case f.f == nil: // stdio: a character device that cannot seek
		buf[0] = filetypeCharDev
		binary.LittleEndian.PutUint64(buf[8:], fileRights&^rightFdSeek&^rightFdTell)
	case f.dir:
		buf[0] = filetypeDirectory
		binary.LittleEndian.PutUint64(buf[8:], dirRights)
		binary.LittleEndian.PutUint64(buf[16:], fileRights|dirRights)
	default:
		buf[0] = filetypeRegular
		binary.LittleEndian.PutUint64(buf[8:], fileRights)
		if f.f.IsAppend() {
			binary.LittleEndian.PutUint16(buf[2:], fdflagAppend)
		}
	}
	return errnoSuccess
}

func (s *System) fdFdstatSetFlags(_ []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	flags := uint32(p[1])
	if flags&^(fdflagAppend|fdflagNonblock) != 0 {
		return errnoInval
	}
	if f.f == nil || f.dir {
		return errnoSuccess // stdio never blocks: its reader and writers are in memory or files
	}
	return toErrno(f.f.SetAppend(flags&fdflagAppend != 0))
}

// writeFilestat writes WASI's filestat (64 bytes).
func writeFilestat(buf []byte, st sys.Stat_t) {
	clear(buf)
	binary.LittleEndian.PutUint64(buf[0:], st.Dev)
	binary.LittleEndian.PutUint64(buf[8:], st.Ino)
	buf[16] = filetype(st.Mode)
	binary.LittleEndian.PutUint64(buf[24:], st.Nlink)
	binary.LittleEndian.PutUint64(buf[32:], uint64(st.Size))
	binary.LittleEndian.PutUint64(buf[40:], uint64(st.Atim))
	binary.LittleEndian.PutUint64(buf[48:], uint64(st.Mtim))
	binary.LittleEndian.PutUint64(buf[56:], uint64(st.Ctim))
}

func (s *System) fdFilestatGet(mem []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	buf, ok := view(mem, uint32(p[1]), 64)
	if !ok {
		return errnoFault
	}
	if f.f == nil {
		writeFilestat(buf, sys.Stat_t{Mode: fs.ModeDevice | fs.ModeCharDevice, Nlink: 1})
		return errnoSuccess
	}
	st, e := f.f.Stat()
	if e != 0 {
		return toErrno(e)
	}
	writeFilestat(buf, st)
	return errnoSuccess
}

func (s *System) fdFilestatSetSize(_ []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	if f.f == nil || f.dir {
		return errnoBadf
	}
	return toErrno(f.f.Truncate(int64(p[1])))
}

// Flags of the set_times functions.
const (
	fstflagAtim    = 1
	fstflagAtimNow = 2
	fstflagMtim    = 4
	fstflagMtimNow = 8
)

// times turns WASI's set_times arguments into Utimens's, the present being
// the virtual wall clock.
func (s *System) times(atim, mtim uint64, flags uint32) (int64, int64, uint32) {
	if flags&(fstflagAtim|fstflagAtimNow) == fstflagAtim|fstflagAtimNow || flags&(fstflagMtim|fstflagMtimNow) == fstflagMtim|fstflagMtimNow {
		return 0, 0, errnoInval
	}
	now := func() int64 {
		sec, nsec := s.cfg.Walltime()
		return sec*1e9 + int64(nsec)
	}
	a, m := int64(experimentalsys.UTIME_OMIT), int64(experimentalsys.UTIME_OMIT)
	switch {
	case flags&fstflagAtim != 0:
		a = int64(atim)
	case flags&fstflagAtimNow != 0:
		a = now()
	}
	switch {
	case flags&fstflagMtim != 0:
		m = int64(mtim)
	case flags&fstflagMtimNow != 0:
		m = now()
	}
	return a, m, errnoSuccess
}

func (s *System) fdFilestatSetTimes(_ []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	if f.f == nil {
		return errnoBadf
	}
	a, m, errno := s.times(p[1], p[2], uint32(p[3]))
	if errno != 0 {
		return errno
	}
	return toErrno(f.f.Utimens(a, m))
}

// The root's name as the module sees it.
const rootName = "/"

func (s *System) fdPrestatGet(mem []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	if !f.preopen || !f.dir {
		return errnoBadf
	}
	buf, ok := view(mem, uint32(p[1]), 8)
	if !ok {
		return errnoFault
	}
	clear(buf)
	binary.LittleEndian.PutUint32(buf[4:], uint32(len(rootName)))
	return errnoSuccess
}

func (s *System) fdPrestatDirName(mem []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	if !f.preopen || !f.dir {
		return errnoBadf
	}
	if uint32(p[2]) < uint32(len(rootName)) {
		return errnoNametoolong
	}
	buf, ok := view(mem, uint32(p[1]), uint32(len(rootName)))
	if !ok {
		return errnoFault
	}
	copy(buf, rootName)
	return errnoSuccess
}

func (s *System) fdRenumber(_ []byte, p []uint64) uint32 {
	from, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	to, errno := s.lookup(p[1])
	if errno != 0 {
		return errno
	}
	if from.preopen || to.preopen {
		return errnoNotsup
	}
	if to.f != nil {
		to.f.Close()
	}
	s.files[uint32(p[1])] = from
	delete(s.files, uint32(p[0]))
	return errnoSuccess
}

func (s *System) fdSeek(mem []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	whence := uint32(p[2])
	if whence > io.SeekEnd {
		return errnoInval
	}
	if _, ok := view(mem, uint32(p[3]), 8); !ok {
		return errnoFault
	}
	switch {
	case f.f == nil:
		return errnoSpipe
	case f.dir:
		return errnoIsdir
	}
	off, e := f.f.Seek(int64(p[1]), int(whence))
	if e != 0 {
		return toErrno(e)
	}
	putU64(mem, uint32(p[3]), uint64(off))
	return errnoSuccess
}

func (s *System) fdTell(mem []byte, p []uint64) uint32 {
	return s.fdSeek(mem, []uint64{p[0], 0, io.SeekCurrent, p[1]})
}

// fdReaddir lists a directory from the entry numbered cookie: "." and ".."
// first, then the directory's entries as they were when the listing last
// started at cookie 0.
func (s *System) fdReaddir(mem []byte, p []uint64) uint32 {
	f, errno := s.lookup(p[0])
	if errno != 0 {
		return errno
	}
	if !f.dir {
		return errnoNotdir
	}
	buf, ok := view(mem, uint32(p[1]), uint32(p[2]))
	if !ok {
		return errnoFault
	}
	if _, ok := view(mem, uint32(p[4]), 4); !ok {
		return errnoFault
	}
	cookie := p[3]
	if cookie == 0 || !f.direntOK {
		if _, e := f.f.Seek(0, io.SeekStart); e != 0 {
			return toErrno(e)
		}
		var all []experimentalsys.Dirent
		for {
			batch, e := f.f.Readdir(64)
			if e != 0 {
				return toErrno(e)
			}
			if len(batch) == 0 {
				break
			}
			all = append(all, batch...)
		}
		f.dirents = append([]experimentalsys.Dirent{{Name: ".", Type: fs.ModeDir}, {Name: "..", Type: fs.ModeDir}}, all...)
		f.direntOK = true
	}
	if cookie > uint64(len(f.dirents)) {
		return errnoInval
	}
	used := 0
	for i := int(cookie); i < len(f.dirents) && used < len(buf); i++ {
		d := f.dirents[i]
		var ent [24]byte
		binary.LittleEndian.PutUint64(ent[0:], uint64(i+1))
		binary.LittleEndian.PutUint64(ent[8:], d.Ino)
		binary.LittleEndian.PutUint32(ent[16:], uint32(len(d.Name)))
		ent[20] = filetype(d.Type)
		used += copy(buf[used:], ent[:])
		used += copy(buf[used:], d.Name)
	}
	putU32(mem, uint32(p[4]), uint32(used))
	return errnoSuccess
}

// onPath applies op to the path argument at off, n relative to the
// directory fd.
func (s *System) onPath(mem []byte, fd, off, n uint64, op func(path string) experimentalsys.Errno) uint32 {
	path, errno := s.resolve(mem, fd, off, n)
	if errno != 0 {
		return errno
	}
	return toErrno(op(path))
}

// onPaths applies op to two path arguments, each a directory fd, offset and
// length: link and rename.
func (s *System) onPaths(mem []byte, from, to [3]uint64, op func(from, to string) experimentalsys.Errno) uint32 {
	a, errno := s.resolve(mem, from[0], from[1], from[2])
	if errno != 0 {
		return errno
	}
	b, errno := s.resolve(mem, to[0], to[1], to[2])
	if errno != 0 {
		return errno
	}
	return toErrno(op(a, b))
}

func (s *System) pathCreateDirectory(mem []byte, p []uint64) uint32 {
	return s.onPath(mem, p[0], p[1], p[2], func(path string) experimentalsys.Errno { return s.cfg.FS.Mkdir(path, 0o700) })
}

// lookupSymlinkFollow is the lookup flag that has a path's last element
// followed when it is a symlink.
const lookupSymlinkFollow = 1

func (s *System) pathFilestatGet(mem []byte, p []uint64) uint32 {
	path, errno := s.resolve(mem, p[0], p[2], p[3])
	if errno != 0 {
		return errno
	}
	buf, ok := view(mem, uint32(p[4]), 64)
	if !ok {
		return errnoFault
	}
	var st sys.Stat_t
	var e experimentalsys.Errno
	if uint32(p[1])&lookupSymlinkFollow != 0 {
		st, e = s.cfg.FS.Stat(path)
	} else {
		st, e = s.cfg.FS.Lstat(path)
	}
	if e != 0 {
		return toErrno(e)
	}
	writeFilestat(buf, st)
	return errnoSuccess
}

func (s *System) pathFilestatSetTimes(mem []byte, p []uint64) uint32 {
	path, errno := s.resolve(mem, p[0], p[2], p[3])
	if errno != 0 {
		return errno
	}
	a, m, errno := s.times(p[4], p[5], uint32(p[6]))
	if errno != 0 {
		return errno
	}
	return toErrno(s.cfg.FS.Utimens(path, a, m))
}

func (s *System) pathLink(mem []byte, p []uint64) uint32 {
	return s.onPaths(mem, [3]uint64{p[0], p[2], p[3]}, [3]uint64{p[4], p[5], p[6]}, func(from, to string) experimentalsys.Errno { return s.cfg.FS.Link(from, to) })
}

func (s *System) pathSymlink(mem []byte, p []uint64) uint32 {
	target, ok := guestString(mem, uint32(p[0]), uint32(p[1]))
	if !ok {
		return errnoFault
	}
	link, errno := s.resolve(mem, p[2], p[3], p[4])
	if errno != 0 {
		return errno
	}
	return toErrno(s.cfg.FS.Symlink(target, link))
}

func (s *System) pathReadlink(mem []byte, p []uint64) uint32 {
	path, errno := s.resolve(mem, p[0], p[1], p[2])
	if errno != 0 {
		return errno
	}
	buf, ok := view(mem, uint32(p[3]), uint32(p[4]))
	if !ok {
		return errnoFault
	}
	if _, ok := view(mem, uint32(p[5]), 4); !ok {
		return errnoFault
	}
	target, e := s.cfg.FS.Readlink(path)
	if e != 0 {
		return toErrno(e)
	}
	putU32(mem, uint32(p[5]), uint32(copy(buf, target)))
	return errnoSuccess
}

func (s *System) pathRemoveDirectory(mem []byte, p []uint64) uint32 {
	return s.onPath(mem, p[0], p[1], p[2], func(path string) experimentalsys.Errno { return s.cfg.FS.Rmdir(path) })
}

func (s *System) pathUnlinkFile(mem []byte, p []uint64) uint32 {
	return s.onPath(mem, p[0], p[1], p[2], func(path string) experimentalsys.Errno { return s.cfg.FS.Unlink(path) })
}

func (s *System) pathRename(mem []byte, p []uint64) uint32 {
	return s.onPaths(mem, [3]uint64{p[0], p[1], p[2]}, [3]uint64{p[3], p[4], p[5]}, func(from, to string) experimentalsys.Errno { return s.cfg.FS.Rename(from, to) })
}

// Open flags.
const (
	oflagCreat     = 1
	oflagDirectory = 2
	oflagExcl      = 4
	oflagTrunc     = 8
)

func (s *System) pathOpen(mem []byte, p []uint64) uint32 {
	path, errno := s.resolve(mem, p[0], p[2], p[3])
	if errno != 0 {
		return errno
	}
	if _, ok := view(mem, uint32(p[8]), 4); !ok {
		return errnoFault
	}
	oflags, rights, fdflags := uint32(p[4]), p[5], uint32(p[7])
	var flag experimentalsys.Oflag
	switch {
	case oflags&oflagDirectory != 0:
		flag = experimentalsys.O_RDONLY | experimentalsys.O_DIRECTORY
	case rights&rightFdWrite != 0 && rights&rightFdRead != 0:
		flag = experimentalsys.O_RDWR
	case rights&rightFdWrite != 0:
		flag = experimentalsys.O_WRONLY
	default:
		flag = experimentalsys.O_RDONLY
	}
	if oflags&oflagCreat != 0 {
		flag |= experimentalsys.O_CREAT
	}
	if oflags&oflagExcl != 0 {
		flag |= experimentalsys.O_EXCL
	}
	if oflags&oflagTrunc != 0 {
		flag |= experimentalsys.O_TRUNC
	}
	if fdflags&fdflagAppend != 0 {
		flag |= experimentalsys.O_APPEND
	}
	if uint32(p[1])&lookupSymlinkFollow == 0 {
		flag |= experimentalsys.O_NOFOLLOW
	}
	f, e := s.cfg.FS.OpenFile(path, flag, 0o600)
	if e != 0 {
		return toErrno(e)
	}
	isDir, e := f.IsDir()
	if e != 0 {
		f.Close()
		return toErrno(e)
	}
	if oflags&oflagDirectory != 0 && !isDir {
		f.Close()
		return errnoNotdir
	}
	fd := uint32(fdRoot + 1)
	for s.files[fd] != nil {
		fd++
	}
	s.files[fd] = &file{f: f, dir: isDir, path: strings.TrimSuffix(path, "/")}
	putU32(mem, uint32(p[8]), fd)
	return errnoSuccess
}
