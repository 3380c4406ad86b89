package runner

import (
	"strings"
	"sync/atomic"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// fsHooks watches the guest's use of its directory for checkpoints: a
// memory snapshot is only complete when the module holds no file open (an
// open descriptor lives in the runtime, outside memory), and an app
// checkpoint is taken the moment the app renames its state file into place
// through the SDK, while the app waits in that call.
type fsHooks struct {
	open     atomic.Int64
	onRename func(guestPath string) // nil: nothing to do
}

func (h *fsHooks) opened(f experimentalsys.File) experimentalsys.File {
	h.open.Add(1)
	return &countedFile{File: f, hooks: h}
}

func (h *fsHooks) renamed(to string) {
	if h.onRename != nil {
		h.onRename(strings.TrimPrefix(to, "/"))
	}
}

// openFiles is how many files the guest holds open, its directory aside.
func (h *fsHooks) openFiles() int64 { return h.open.Load() }

type countedFile struct {
	experimentalsys.File
	hooks  *fsHooks
	closed atomic.Bool
}

func (f *countedFile) Close() experimentalsys.Errno {
	if f.closed.CompareAndSwap(false, true) {
		f.hooks.open.Add(-1)
	}
	return f.File.Close()
}
