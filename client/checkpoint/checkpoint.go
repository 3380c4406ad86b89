// Package checkpoint is the codec of momonga's portable checkpoints (DESIGN
// §6): it turns the state of a task, as the runner captured it (linear
// memory, files of the task directory, output written so far, or an app's own
// state file), into the body of a checkpoint container, and back.
//
// The container's framing, header and checksum are workunits' (stdlib only,
// so the project can check a checkpoint without this package); the body is
// one zstd stream:
//
//	page map: one byte per page of PageBytes (pageZero, pageSame, pageData)
//	the data pages, in order
//	files: uvarint count, then per file: path, mode, content (uvarint-prefixed)
//	output: uvarint length, bytes
//	app state: uvarint length, bytes
//
// All-zero pages are not stored. An Encoder that has written a full
// checkpoint writes the next ones as deltas against it (pageSame: the base's
// page), until a delta would no longer be small, and then a full one again:
// so a task's newest checkpoint needs at most one other blob, its base.
// WebAssembly memory is little-endian on every CPU, so a snapshot made on
// amd64 restores on arm64 or s390x as it is.
package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"

	wu "github.com/momonga-project/momonga/workunits"
)

// PageBytes is the granularity of zero-skipping and deltas.
const PageBytes = 4096

// Page kinds in the page map.
const (
	pageZero = 0 // all zero; not stored
	pageSame = 1 // the base checkpoint's page; deltas only
	pageData = 2 // stored in full
)

// Limits on what a body may declare, beyond the memory bound the caller gives.
const (
	maxFiles     = 1 << 16
	maxPathBytes = 4096
)

// State is a task's state as the runner captures and restores it.
type State struct {
	Header   wu.CheckpointHeader
	Memory   []byte // linear memory; nil for an app checkpoint
	Files    []File // the task directory, parents before children
	Output   []byte // stdout written so far
	AppState []byte // an app checkpoint's state file
}

// File is one entry of the task directory.
type File struct {
	Path string // slash-separated, relative to the task directory
	Dir  bool
	Mode uint32 // permission bits
	Data []byte
}

// Encoder writes a task's successive checkpoints, each full or a delta
// against the newest full one it wrote or restored.
type Encoder struct {
	// MaxDeltaFraction: a delta is written only while it stores at most this
	// fraction of the pages a full checkpoint would; default 0.5.
	MaxDeltaFraction float64
	// MaxDeltas bounds the run of deltas on one base; default 32.
	MaxDeltas int

	seed    maphash.Seed
	base    wu.Hash
	digests []uint64 // of the base's pages
	deltas  int
}

// NewEncoder returns an encoder with no base: its first checkpoint is full.
func NewEncoder() *Encoder {
	return &Encoder{seed: maphash.MakeSeed()}
}

// Encode makes the checkpoint blob of st. For a memory snapshot, Header.Base
// and PageBytes are set here.
func (e *Encoder) Encode(st *State) ([]byte, error) {
	h := st.Header
	h.Base = ""
	var kinds []byte
	var digests []uint64
	if h.Kind == wu.CheckpointMemory {
		if len(st.Memory)%PageBytes != 0 {
			return nil, fmt.Errorf("encode checkpoint: memory of %d bytes is not a whole number of %d-byte pages", len(st.Memory), PageBytes)
		}
		h.PageBytes = PageBytes
		h.MemoryBytes = uint64(len(st.Memory))
		kinds, digests = e.classify(st.Memory)
		if e.useDelta(kinds) {
			h.Base = e.base
		} else {
			for i, k := range kinds {
				if k == pageSame {
					kinds[i] = pageData
				}
			}
		}
	}
	var raw chunker
	raw.write(kinds)
	for i, k := range kinds {
		if k == pageData {
			raw.write(st.Memory[i*PageBytes : (i+1)*PageBytes])
		}
	}
	raw.uvarint(uint64(len(st.Files)))
	for _, f := range st.Files {
		raw.bytes([]byte(f.Path))
		mode := uint64(f.Mode) << 1
		if f.Dir {
			mode |= 1
		}
		raw.uvarint(mode)
		raw.bytes(f.Data)
	}
	raw.bytes(st.Output)
	raw.bytes(st.AppState)
	body, err := compress(raw.chunks)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	blob := wu.EncodeCheckpoint(h, body)
	if h.Kind == wu.CheckpointMemory {
		if h.Base == "" {
			e.base, e.digests, e.deltas = wu.HashOf(blob), digests, 0
		} else {
			e.deltas++
		}
	}
	return blob, nil
}

// classify sorts the pages of memory into zero pages, pages equal to the
// base's (when there is a base) and pages to store, and returns every page's
// digest.
func (e *Encoder) classify(memory []byte) ([]byte, []uint64) {
	n := len(memory) / PageBytes
	kinds := make([]byte, n)
	digests := make([]uint64, n)
	for i := range n {
		page := memory[i*PageBytes : (i+1)*PageBytes]
		digests[i] = maphash.Bytes(e.seed, page)
		switch {
		case isZero(page):
			kinds[i] = pageZero
		case i < len(e.digests) && e.digests[i] == digests[i]:
			kinds[i] = pageSame
		default:
			kinds[i] = pageData
		}
	}
	return kinds, digests
}

func (e *Encoder) useDelta(kinds []byte) bool {
	if e.base == "" || len(kinds) < len(e.digests) {
		return false
	}
	maxDeltas, maxFraction := e.MaxDeltas, e.MaxDeltaFraction
	if maxDeltas <= 0 {
		maxDeltas = 32
	}
	if maxFraction <= 0 {
		maxFraction = 0.5
	}
	if e.deltas >= maxDeltas {
		return false
	}
	var data, nonzero int
	for _, k := range kinds {
		if k != pageZero {
			nonzero++
		}
		if k == pageData {
			data++
		}
	}
	return float64(data) <= maxFraction*float64(nonzero)
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// chunkBytes is the size of the pieces of a body compressed in parallel,
// each as its own zstd frame: a zstd stream may be a run of frames, so the
// decoder reads them as one.
const chunkBytes = 4 << 20

// chunker collects the raw body in pieces of chunkBytes.
type chunker struct {
	chunks [][]byte
}

func (c *chunker) write(b []byte) {
	for len(b) > 0 {
		if len(c.chunks) == 0 || len(c.chunks[len(c.chunks)-1]) == chunkBytes {
			c.chunks = append(c.chunks, make([]byte, 0, chunkBytes))
		}
		last := &c.chunks[len(c.chunks)-1]
		n := min(len(b), chunkBytes-len(*last))
		*last = append(*last, b[:n]...)
		b = b[n:]
	}
}

func (c *chunker) uvarint(v uint64) {
	var buf [binary.MaxVarintLen64]byte
	c.write(buf[:binary.PutUvarint(buf[:], v)])
}

func (c *chunker) bytes(b []byte) {
	c.uvarint(uint64(len(b)))
	c.write(b)
}

var (
	encoderOnce sync.Once
	encoder     *zstd.Encoder
	encoderErr  error
)

// compress compresses the chunks on every core at once, each into a zstd
// frame, and joins the frames in order.
func compress(chunks [][]byte) ([]byte, error) {
	encoderOnce.Do(func() {
		encoder, encoderErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	})
	if encoderErr != nil {
		return nil, encoderErr
	}
	frames := make([][]byte, len(chunks))
	next := make(chan int, len(chunks))
	for i := range chunks {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(chunks)) {
		wg.Go(func() {
			for i := range next {
				frames[i] = encoder.EncodeAll(chunks[i], nil)
			}
		})
	}
	wg.Wait()
	var out []byte
	for _, f := range frames {
		out = append(out, f...)
	}
	return out, nil
}

// ErrNeedsBase is returned by Decode for a delta whose base was not given.
var ErrNeedsBase = errors.New("delta checkpoint needs its base")

// Limits bound what decoding may allocate; a checkpoint that declares more
// is refused before anything is allocated for it.
type Limits struct {
	MemoryBytes uint64 // linear memory
	DataBytes   uint64 // files, output and app state together
}

// Decode restores the state in a chain of checkpoint blobs: a full
// checkpoint, or a delta preceded by its base. It checks every blob's
// framing, checksum, app and task, and that the chain holds together, and
// returns a State with the newest header, plus an Encoder whose next
// checkpoint can be a delta against the chain's full checkpoint.
func Decode(chain [][]byte, app wu.Hash, task string, lim Limits) (*State, *Encoder, error) {
	if len(chain) == 0 || len(chain) > 2 {
		return nil, nil, fmt.Errorf("decode checkpoint: a chain holds one or two checkpoints, not %d", len(chain))
	}
	enc := NewEncoder()
	var st *State
	for i, blob := range chain {
		h, body, err := wu.ParseCheckpoint(blob)
		if err != nil {
			return nil, nil, err
		}
		if err := h.Check(app, task); err != nil {
			return nil, nil, err
		}
		hash := wu.HashOf(blob)
		switch {
		case i == 0 && h.Delta() && len(chain) == 1:
			return nil, nil, fmt.Errorf("decode checkpoint %d: %w %s", h.Seq, ErrNeedsBase, h.Base.Short())
		case i == 0 && h.Delta():
			return nil, nil, fmt.Errorf("decode checkpoint %d: the first of a chain must be full", h.Seq)
		case i == 1 && (!h.Delta() || h.Base != wu.HashOf(chain[0])):
			return nil, nil, fmt.Errorf("decode checkpoint %d: it is not a delta of the checkpoint before it", h.Seq)
		case i == 1 && h.Kind != st.Header.Kind:
			return nil, nil, fmt.Errorf("decode checkpoint %d: its base is of another kind", h.Seq)
		}
		next, err := decodeBody(h, body, st, lim)
		if err != nil {
			return nil, nil, fmt.Errorf("decode checkpoint %d: %w", h.Seq, err)
		}
		if i == 0 && h.Kind == wu.CheckpointMemory {
			enc.base = hash
			enc.digests = digestPages(enc.seed, next.Memory)
		} else if i == 1 {
			enc.deltas = 1
		}
		st = next
	}
	return st, enc, nil
}

func digestPages(seed maphash.Seed, memory []byte) []uint64 {
	n := len(memory) / PageBytes
	d := make([]uint64, n)
	for i := range n {
		d[i] = maphash.Bytes(seed, memory[i*PageBytes:(i+1)*PageBytes])
	}
	return d
}

// decodeBody reads a body; base is the decoded base of a delta, else nil.
func decodeBody(h wu.CheckpointHeader, body []byte, base *State, lim Limits) (*State, error) {
	st := &State{Header: h}
	zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	r := bufio.NewReaderSize(zr, 256<<10)
	if h.Kind == wu.CheckpointMemory {
		if h.PageBytes != PageBytes || h.MemoryBytes%PageBytes != 0 {
			return nil, fmt.Errorf("page size %d or memory size %d is not this codec's", h.PageBytes, h.MemoryBytes)
		}
		if h.MemoryBytes > lim.MemoryBytes {
			return nil, fmt.Errorf("it holds %d bytes of memory, more than the task's limit of %d", h.MemoryBytes, lim.MemoryBytes)
		}
		if base != nil && uint64(len(base.Memory)) > h.MemoryBytes {
			return nil, fmt.Errorf("its memory is smaller than its base's")
		}
		n := int(h.MemoryBytes / PageBytes)
		kinds := make([]byte, n)
		if _, err := io.ReadFull(r, kinds); err != nil {
			return nil, fmt.Errorf("page map: %w", truncated(err))
		}
		st.Memory = make([]byte, h.MemoryBytes)
		for i, k := range kinds {
			page := st.Memory[i*PageBytes : (i+1)*PageBytes]
			switch {
			case k == pageZero:
			case k == pageData:
				if _, err := io.ReadFull(r, page); err != nil {
					return nil, fmt.Errorf("page %d: %w", i, truncated(err))
				}
			case k == pageSame && base != nil && (i+1)*PageBytes <= len(base.Memory):
				copy(page, base.Memory[i*PageBytes:])
			default:
				return nil, fmt.Errorf("page %d has kind %d, which is not valid here", i, k)
			}
		}
	}
	left := lim.DataBytes
	readBytes := func(what string, limit uint64) ([]byte, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, truncated(err))
		}
		if n > limit || n > left {
			return nil, fmt.Errorf("%s of %d bytes is over the limit", what, n)
		}
		left -= n
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("%s: %w", what, truncated(err))
		}
		return b, nil
	}
	files, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("file count: %w", truncated(err))
	}
	if files > maxFiles {
		return nil, fmt.Errorf("%d files is more than %d", files, maxFiles)
	}
	for range files {
		path, err := readBytes("file name", maxPathBytes)
		if err != nil {
			return nil, err
		}
		mode, err := binary.ReadUvarint(r)
		if err != nil || mode>>1 > 0o7777 {
			return nil, fmt.Errorf("file %q: malformed mode", path)
		}
		data, err := readBytes("file "+string(path), lim.DataBytes)
		if err != nil {
			return nil, err
		}
		if !validPath(string(path)) || mode&1 != 0 && len(data) > 0 {
			return nil, fmt.Errorf("file %q: not a valid entry of a task directory", path)
		}
		st.Files = append(st.Files, File{Path: string(path), Dir: mode&1 != 0, Mode: uint32(mode >> 1), Data: data})
	}
	if st.Output, err = readBytes("output", lim.DataBytes); err != nil {
		return nil, err
	}
	if st.AppState, err = readBytes("app state", lim.DataBytes); err != nil {
		return nil, err
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("bytes left over after the app state (%v)", err)
	}
	return st, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("body ends early")
	}
	return err
}

// validPath accepts a relative, slash-separated path with no empty, "." or
// ".." element: a checkpoint can only name files inside the task directory.
func validPath(p string) bool {
	if p == "" || p[0] == '/' || p[len(p)-1] == '/' {
		return false
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if e := p[start:i]; e == "" || e == "." || e == ".." {
				return false
			}
			start = i + 1
		} else if p[i] == 0 || p[i] == '\\' {
			return false
		}
	}
	return true
}
