package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/momonga-project/momonga/client/checkpoint"
	"github.com/momonga-project/momonga/internal/atomicfile"
	"github.com/momonga-project/momonga/workunits"
	"github.com/momonga-project/momonga/workunits/sdk"
)

// CheckpointSpec has a run checkpoint itself (DESIGN §6): a reactor module
// (one that exports step) by memory snapshots between two calls of step, a
// command module through the SDK's state file (workunits/sdk). Checkpoints
// are written as files into Dir, and the caller is told of each (Control).
type CheckpointSpec struct {
	App      workunits.Hash `json:"app"`      // the module's hash, written into each checkpoint
	Task     string         `json:"task"`     // the task, likewise
	Dir      string         `json:"dir"`      // where checkpoint files go; it exists
	Interval float64        `json:"interval"` // seconds between checkpoints; <= 0: only when asked
	// Resume, when set, is the checkpoint chain (base first) to start from.
	// A chain that cannot be used is reported in Result.Resumed and the task
	// starts from the beginning instead: never from a state it cannot trust.
	Resume []string `json:"resume,omitempty"`
	// Interpreter runs the module on wazero's interpreter rather than its
	// compiler, which must give the same results (Spec.Engine
	// "wazero-interpreter" says the same; this field is kept for the
	// workers of older daemons).
	Interpreter bool `json:"interpreter,omitempty"`
}

// Control is the caller's line to a running task.
type Control struct {
	// Request, when it yields, asks for a checkpoint at the next chance: the
	// end of the current step, or the app's next call of the SDK.
	Request <-chan struct{}
	// Stop, when it yields, asks for a checkpoint at the next chance, after
	// which the run ends (Result.Stopped): what a host does before it quits.
	Stop <-chan struct{}
	// Written is told of every checkpoint file written. It is called on the
	// module's goroutine, between two steps: it must not block.
	Written func(Written)
}

// Written is one checkpoint written by a run.
type Written struct {
	Path       string         `json:"path"`
	Hash       workunits.Hash `json:"hash"`
	Size       int64          `json:"size"`
	Seq        uint64         `json:"seq"`
	Base       workunits.Hash `json:"base,omitempty"` // a delta's base, already written or given
	BasePath   string         `json:"base_path,omitempty"`
	BaseSize   int64          `json:"base_size,omitempty"`
	Progress   float64        `json:"progress"`
	CPUSeconds float64        `json:"cpu_seconds"` // of the task so far, on every host together
	Steps      uint64         `json:"steps,omitempty"`
}

// Ref is how the project names this checkpoint.
func (w Written) Ref() workunits.CheckpointRef {
	return workunits.CheckpointRef{Hash: w.Hash, Size: w.Size, Seq: w.Seq, Base: w.Base, BaseSize: w.BaseSize,
		Progress: w.Progress, CPUSeconds: w.CPUSeconds}
}

// Resumed is where a run started.
type Resumed struct {
	Seq        uint64  `json:"seq,omitempty"`
	Progress   float64 `json:"progress,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"` // CPU time the task had used before this run
	Steps      uint64  `json:"steps,omitempty"`
	// Error says why the checkpoint was refused; the run then started from
	// the beginning.
	Error string `json:"error,omitempty"`
}

// maxNotes bounds Result.Notes.
const maxNotes = 8

// taskRun is one run of a module with everything it is given.
type taskRun struct {
	spec     Spec
	limits   workunits.Limits
	module   *workunits.Module
	compiled compiled
	inst     instance // the newest instance, for what a failure was
	ctl      Control

	out      *os.File
	buffered *bufio.Writer
	stdout   *cappedOutput
	stderr   *stderrCapture
	stdin    *os.File
	host     *virtualHost
	hooks    *fsHooks
	cpuStart time.Duration

	enc       *checkpoint.Encoder
	seq       uint64  // of the newest checkpoint written or resumed from
	cpuBefore float64 // CPU seconds of the task before this run
	steps     uint64
	base      Written // the full checkpoint deltas refer to
	last      time.Time
	resumed   *Resumed
	written   int
	notes     []string

	mu       sync.Mutex // app checkpoints: taken on the module's goroutine, asked for from others
	due      bool
	pending  bool // the caller asked
	stopping bool // the caller asked to stop after the next checkpoint
}

// StoppedAfterCheckpoint starts the Reason of a run that Control.Stop ended.
const StoppedAfterCheckpoint = "stopped after checkpoint"

func (t *taskRun) note(format string, args ...any) {
	if len(t.notes) < maxNotes {
		t.notes = append(t.notes, fmt.Sprintf(format, args...))
	}
}

// resetHost gives the module a host as at the start of the task: clocks and
// random stream at their beginning, stdin from its first byte, no output.
func (t *taskRun) resetHost() error {
	t.host = newVirtualHost(t.spec.Seed)
	t.host.stdout = t.stdout
	if t.stdin != nil {
		if _, err := t.stdin.Seek(0, io.SeekStart); err != nil {
			return err
		}
		t.host.stdin = &countingReader{r: bufio.NewReader(t.stdin)}
	}
	t.buffered.Reset(t.out)
	t.stdout.written = 0
	if err := t.out.Truncate(0); err != nil {
		return err
	}
	_, err := t.out.Seek(0, io.SeekStart)
	return err
}

func (t *taskRun) instantiate(ctx context.Context) (instance, error) {
	g := &guest{
		args:   append([]string{t.spec.Name}, t.spec.Args...),
		stdout: t.stdout, stderr: t.stderr,
		fs:          newTaskFS(t.spec.Dir, t.hooks),
		host:        t.host,
		memoryLimit: uint64(t.limits.MemoryBytes),
	}
	if t.host.stdin != nil {
		g.stdin = t.host.stdin
	}
	inst, err := t.compiled.instantiate(ctx, g)
	if err == nil {
		t.inst = inst
	}
	return inst, err
}

// Reactor results of step.
const (
	stepAgain = 0
	stepDone  = 1
)

// runReactor calls _initialize once (unless it resumes from a snapshot),
// then step until it reports done, checkpointing in between.
func (t *taskRun) runReactor(ctx context.Context) Result {
	mod, fresh, err := t.startReactor(ctx)
	if err != nil {
		return t.outcome(err, false)
	}
	defer func() { mod.close(ctx) }()
	if fresh && mod.hasFunc("_initialize") {
		if _, err := mod.call(ctx, "_initialize"); err != nil {
			return t.outcome(err, true)
		}
	}
	t.last = time.Now()
	for {
		if t.spec.Checkpoint != nil && t.checkpointDue() {
			if t.snapshot(mod) && t.stopping {
				return t.stopped()
			}
		}
		res, err := mod.call(ctx, "step")
		if err != nil {
			return t.outcome(err, true)
		}
		t.steps++
		switch int32(res[0]) {
		case stepAgain:
		case stepDone:
			return Result{}
		default:
			return failure(exitNone, fmt.Sprintf("the module's step returned %d, which is neither 0 (again) nor 1 (done)", int32(res[0])))
		}
	}
}

// checkpointDue reports whether the interval has passed or the caller asked.
func (t *taskRun) checkpointDue() bool {
	select {
	case <-t.ctl.Request:
		t.pending = true
	case <-t.ctl.Stop:
		t.pending, t.stopping = true, true
	default:
	}
	iv := t.spec.Checkpoint.Interval
	return t.pending || iv > 0 && time.Since(t.last) >= time.Duration(iv*float64(time.Second))
}

// startReactor instantiates the module, restored from the checkpoint chain
// when there is one that can be used (fresh is then false).
func (t *taskRun) startReactor(ctx context.Context) (instance, bool, error) {
	if t.spec.Checkpoint == nil {
		mod, err := t.instantiate(ctx)
		return mod, true, err
	}
	t.enc = checkpoint.NewEncoder()
	if len(t.spec.Checkpoint.Resume) == 0 {
		mod, err := t.instantiate(ctx)
		return mod, true, err
	}
	st, enc, err := t.decodeResume(workunits.CheckpointMemory)
	if err == nil {
		var mod instance
		if mod, err = t.restoreReactor(ctx, st); err == nil {
			t.resumedFrom(st, enc)
			return mod, false, nil
		}
	}
	t.resumed = &Resumed{Error: err.Error()}
	if err := t.startOver(); err != nil {
		return nil, true, err
	}
	mod, err := t.instantiate(ctx)
	return mod, true, err
}

func (t *taskRun) resumedFrom(st *checkpoint.State, enc *checkpoint.Encoder) {
	h := st.Header
	t.enc, t.seq, t.cpuBefore, t.steps = enc, h.Seq, h.CPUSeconds, h.Steps
	t.resumed = &Resumed{Seq: h.Seq, Progress: h.Progress, CPUSeconds: h.CPUSeconds, Steps: h.Steps}
}

// startOver clears what a refused checkpoint may have put in place.
func (t *taskRun) startOver() error {
	if err := clearDir(t.spec.Dir); err != nil {
		return err
	}
	t.enc, t.seq, t.cpuBefore, t.steps, t.base = checkpoint.NewEncoder(), 0, 0, 0, Written{}
	return t.resetHost()
}

// decodeResume reads and checks the checkpoint chain the run resumes from.
func (t *taskRun) decodeResume(kind workunits.CheckpointKind) (*checkpoint.State, *checkpoint.Encoder, error) {
	var chain [][]byte
	for _, p := range t.spec.Checkpoint.Resume {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read checkpoint: %w", err)
		}
		chain = append(chain, b)
	}
	st, enc, err := checkpoint.Decode(chain, t.spec.Checkpoint.App, t.spec.Checkpoint.Task,
		checkpoint.Limits{MemoryBytes: uint64(t.limits.MemoryBytes), DataBytes: uint64(t.limits.OutputBytes) + workunits.MaxCheckpointBytes})
	if err != nil {
		return nil, nil, err
	}
	if st.Header.Kind != kind {
		return nil, nil, fmt.Errorf("checkpoint is an %s checkpoint; this module needs a %s one", st.Header.Kind, kind)
	}
	if int64(len(st.Output)) > t.limits.OutputBytes {
		return nil, nil, fmt.Errorf("checkpoint holds more output than the task may write")
	}
	if kind == workunits.CheckpointMemory {
		// New checkpoints are deltas against the chain's full checkpoint.
		t.base = Written{Path: t.spec.Checkpoint.Resume[0], Hash: workunits.HashOf(chain[0]), Size: int64(len(chain[0]))}
	}
	return st, enc, nil
}

// restoreHostFiles puts a checkpoint's directory and output in place and
// moves stdin to where the module had read it.
func (t *taskRun) restoreHostFiles(st *checkpoint.State) error {
	if err := clearDir(t.spec.Dir); err != nil {
		return err
	}
	if err := writeFiles(t.spec.Dir, st.Files); err != nil {
		return err
	}
	if _, err := t.out.Write(st.Output); err != nil {
		return err
	}
	t.stdout.written = int64(len(st.Output))
	if h := st.Header.Host; h != nil && t.host.stdin != nil {
		if n, err := io.CopyN(io.Discard, t.host.stdin, h.StdinBytes); err != nil || n != h.StdinBytes {
			return fmt.Errorf("checkpoint read %d bytes of stdin, which has fewer", h.StdinBytes)
		}
	}
	return nil
}

// restoreReactor puts a memory snapshot into a fresh instance.
func (t *taskRun) restoreReactor(ctx context.Context, st *checkpoint.State) (instance, error) {
	h := st.Header
	if err := t.restoreHostFiles(st); err != nil {
		return nil, fmt.Errorf("restore checkpoint %d: %w", h.Seq, err)
	}
	t.host.restore(h.Host)
	mod, err := t.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	if err := restoreInstance(mod, t.module, st); err != nil {
		mod.close(ctx)
		return nil, fmt.Errorf("restore checkpoint %d: %w", h.Seq, err)
	}
	return mod, nil
}

// restoreInstance writes a snapshot's memory and globals into mod.
func restoreInstance(mod instance, module *workunits.Module, st *checkpoint.State) error {
	mem := mod.memory()
	if mem == nil {
		return errors.New("the module has no memory")
	}
	size := uint64(len(mem))
	want := uint64(len(st.Memory))
	if want%wasmPage != 0 || want < size {
		return fmt.Errorf("snapshot of %d bytes of memory does not fit the module's %d", want, size)
	}
	if want > math.MaxUint32 {
		return fmt.Errorf("cannot write %d bytes of memory", want)
	}
	if want > size {
		if !mod.growMemory(uint32((want - size) / wasmPage)) {
			return fmt.Errorf("cannot grow memory to the snapshot's %d bytes", want)
		}
	}
	mem = mod.memory()
	if uint64(len(mem)) != want {
		return fmt.Errorf("cannot write %d bytes of memory", want)
	}
	copy(mem, st.Memory)

	names := globalNames(module)
	if len(names) != len(st.Header.Globals) {
		return fmt.Errorf("snapshot holds %d mutable globals; the module has %d", len(st.Header.Globals), len(names))
	}
	for i, g := range st.Header.Globals {
		typ, _, ok := mod.global(g.Name)
		if !ok || g.Name != names[i] || typ != g.Type || !mod.setGlobal(g.Name, g.Bits) {
			return fmt.Errorf("snapshot global %q does not match the module's", g.Name)
		}
	}
	return nil
}

// globalNames lists the export names of the module's mutable globals in
// index order, or nil when one of them is not exported (a module that was
// not published through `app add`).
func globalNames(module *workunits.Module) []string {
	exports := module.MutableGlobalExports()
	idx := make([]uint32, 0, len(exports))
	for i := range exports {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	names := make([]string, 0, len(idx))
	for _, i := range idx {
		if exports[i] == "" {
			return nil
		}
		names = append(names, exports[i])
	}
	return names
}

func (t *taskRun) stopped() Result {
	res := failure(exitNone, fmt.Sprintf("%s %d", StoppedAfterCheckpoint, t.seq))
	res.Stopped = true
	return res
}

// snapshot writes a memory checkpoint of mod, between two steps, and
// reports whether it did.
func (t *taskRun) snapshot(mod instance) bool {
	if n := t.hooks.openFiles(); n > 0 {
		return false // files open across steps: try again after the next one
	}
	t.pending = false
	t.last = time.Now()
	names := globalNames(t.module)
	if names == nil && len(t.module.MutableGlobalExports()) > 0 {
		t.note("no checkpoints: the module's mutable globals are not exported (publish it with `momonga-project app add`)")
		t.spec.Checkpoint.Interval = 0
		return false
	}
	globals := make([]workunits.GlobalValue, 0, len(names))
	for _, name := range names {
		typ, bits, _ := mod.global(name)
		globals = append(globals, workunits.GlobalValue{Name: name, Type: typ, Bits: bits})
	}
	st := &checkpoint.State{
		Header: workunits.CheckpointHeader{Kind: workunits.CheckpointMemory, Steps: t.steps, Globals: globals, Host: t.host.state()},
		Memory: mod.memory(),
	}
	return t.write(st)
}

// write fills in the header's common fields, captures the directory and the
// output, encodes the checkpoint and writes its file; it reports whether it
// did.
func (t *taskRun) write(st *checkpoint.State) bool {
	if err := t.capture(st); err != nil {
		t.note("checkpoint %d not written: %v", t.seq+1, err)
		return false
	}
	blob, err := t.enc.Encode(st)
	if err != nil {
		t.note("checkpoint %d not written: %v", t.seq+1, err)
		return false
	}
	h, _, _ := workunits.ParseCheckpoint(blob)
	path := filepath.Join(t.spec.Checkpoint.Dir, fmt.Sprintf("ckpt-%06d", h.Seq))
	if err := atomicfile.Write(path, blob, 0o600); err != nil {
		t.note("checkpoint %d not written: %v", h.Seq, err)
		return false
	}
	t.seq = h.Seq
	t.written++
	w := Written{Path: path, Hash: workunits.HashOf(blob), Size: int64(len(blob)), Seq: h.Seq,
		Progress: h.Progress, CPUSeconds: h.CPUSeconds, Steps: h.Steps}
	if h.Delta() {
		w.Base, w.BasePath, w.BaseSize = t.base.Hash, t.base.Path, t.base.Size
	}
	if !h.Delta() {
		t.base = w
	}
	t.pruneCheckpoints(w)
	if t.ctl.Written != nil {
		t.ctl.Written(w)
	}
	return true
}

// pruneCheckpoints removes the run's checkpoint files that the newest one
// no longer needs.
func (t *taskRun) pruneCheckpoints(newest Written) {
	entries, _ := os.ReadDir(t.spec.Checkpoint.Dir)
	for _, e := range entries {
		p := filepath.Join(t.spec.Checkpoint.Dir, e.Name())
		if strings.HasPrefix(e.Name(), "ckpt-") && p != newest.Path && p != t.base.Path {
			os.Remove(p)
		}
	}
}

// capture sets the header's identity, progress and CPU time, and reads the
// task directory and the output written so far into st.
func (t *taskRun) capture(st *checkpoint.State) error {
	h := &st.Header
	h.App, h.Task, h.Seq = t.spec.Checkpoint.App, t.spec.Checkpoint.Task, t.seq+1
	h.Progress = readProgress(t.spec.Dir)
	h.CPUSeconds = t.cpuBefore + (selfCPU() - t.cpuStart).Seconds()
	if err := t.buffered.Flush(); err != nil {
		return err
	}
	out := make([]byte, t.stdout.written)
	if _, err := t.out.ReadAt(out, 0); err != nil {
		return fmt.Errorf("read output: %w", err)
	}
	st.Output = out
	files, err := readFiles(t.spec.Dir)
	st.Files = files
	return err
}

// readProgress reads the fraction the app wrote to its progress file.
func readProgress(dir string) float64 {
	b, err := os.ReadFile(filepath.Join(dir, sdk.ProgressFile))
	if err != nil {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil || f != f {
		return 0
	}
	return min(max(f, 0), 1)
}

// readFiles reads a task directory, parents before children. The directory
// holds no links: the task's file system refuses to make any.
func readFiles(dir string) ([]checkpoint.File, error) {
	var files []checkpoint.File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := checkpoint.File{Path: filepath.ToSlash(rel), Dir: d.IsDir(), Mode: uint32(info.Mode().Perm())}
		switch {
		case d.IsDir():
		case info.Mode().IsRegular():
			if f.Data, err = os.ReadFile(p); err != nil {
				return err
			}
		default:
			return nil // not something a module can make; not carried
		}
		files = append(files, f)
		return nil
	})
	return files, err
}

func writeFiles(dir string, files []checkpoint.File) error {
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		var err error
		if f.Dir {
			err = os.Mkdir(p, fs.FileMode(f.Mode)|0o700)
		} else {
			err = os.WriteFile(p, f.Data, fs.FileMode(f.Mode)|0o600)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// startAppCheckpoints prepares a command module's app checkpoints: it
// resumes from the given checkpoint (the app finds its state through the
// SDK), and from then on tells the app when a checkpoint is due by creating
// the SDK's due file, and takes the checkpoint when the app puts its state
// file in place. The returned function stops it.
func (t *taskRun) startAppCheckpoints(ctx context.Context) (stop func()) {
	t.enc = checkpoint.NewEncoder()
	if len(t.spec.Checkpoint.Resume) > 0 {
		st, enc, err := t.decodeResume(workunits.CheckpointApp)
		if err == nil {
			if err = t.restoreHostFiles(st); err == nil {
				t.resumedFrom(st, enc)
			}
		}
		if err != nil {
			t.resumed = &Resumed{Error: err.Error()}
			if err := t.startOver(); err != nil {
				t.note("could not clear a refused checkpoint: %v", err)
			}
		}
	}
	_ = os.Mkdir(filepath.Join(t.spec.Dir, sdk.Dir), 0o700)
	os.Remove(filepath.Join(t.spec.Dir, sdk.DueFile))
	t.hooks.onRename = func(p string) {
		if p != sdk.StateFile {
			return
		}
		t.mu.Lock()
		due, stopping := t.due, t.stopping
		t.due = false
		t.mu.Unlock()
		if !due {
			return
		}
		os.Remove(filepath.Join(t.spec.Dir, sdk.DueFile))
		st := &checkpoint.State{Header: workunits.CheckpointHeader{Kind: workunits.CheckpointApp}}
		st.AppState, _ = os.ReadFile(filepath.Join(t.spec.Dir, sdk.StateFile))
		if t.write(st) && stopping {
			// Ends the module from inside its rename call (see stopError).
			panic(&stopError{reason: fmt.Sprintf("%s %d", StoppedAfterCheckpoint, t.seq), stopped: true})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var tick <-chan time.Time
		if iv := t.spec.Checkpoint.Interval; iv > 0 {
			ticker := time.NewTicker(time.Duration(iv * float64(time.Second)))
			defer ticker.Stop()
			tick = ticker.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			case <-t.ctl.Request:
			case <-t.ctl.Stop:
				t.mu.Lock()
				t.stopping = true
				t.mu.Unlock()
			}
			t.mu.Lock()
			t.due = true
			t.mu.Unlock()
			_ = os.WriteFile(filepath.Join(t.spec.Dir, sdk.DueFile), nil, 0o600)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
