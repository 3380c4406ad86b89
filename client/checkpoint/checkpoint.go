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
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"runtime"
	"slices"
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
	for i := 0; i < len(kinds); {
		if kinds[i] != pageData {
			i++
			continue
		}
		j := i
		for j < len(kinds) && kinds[j] == pageData {
			j++
		}
		raw.ref(st.Memory[i*PageBytes : j*PageBytes])
		i = j
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
	body, err := compress(raw.pieces)
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

// chunkBytes bounds the pieces of a body compressed in parallel, each as
// its own zstd frame.
const chunkBytes = 4 << 20

// minRefBytes: a run of memory pages at least this long is compressed where
// it lies rather than copied first.
const minRefBytes = 256 << 10

// chunker collects the raw body as pieces of at most chunkBytes: small
// writes are copied into buffers, long runs of memory are referred to.
type chunker struct {
	pieces [][]byte
	owned  bool // the last piece is a buffer of ours that may grow
}

func (c *chunker) write(b []byte) {
	for len(b) > 0 {
		if !c.owned || len(c.pieces[len(c.pieces)-1]) == chunkBytes {
			c.pieces = append(c.pieces, make([]byte, 0, min(chunkBytes, max(len(b), 64<<10))))
			c.owned = true
		}
		last := &c.pieces[len(c.pieces)-1]
		n := min(len(b), chunkBytes-len(*last))
		*last = append(*last, b[:n]...)
		b = b[n:]
	}
}

func (c *chunker) ref(b []byte) {
	if len(b) < minRefBytes {
		c.write(b)
		return
	}
	for len(b) > 0 {
		n := min(len(b), chunkBytes)
		c.pieces = append(c.pieces, b[:n:n])
		b = b[n:]
	}
	c.owned = false
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
	codecOnce  sync.Once
	encoder    *zstd.Encoder
	decoder    *zstd.Decoder
	codecError error
)

func codec() error {
	codecOnce.Do(func() {
		encoder, codecError = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if codecError == nil {
			// No frame may say it holds more than a piece: a hostile one
			// cannot make the decoder allocate more.
			decoder, codecError = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderMaxMemory(chunkBytes))
		}
	})
	return codecError
}

// compress compresses the pieces on every core at once, each into a zstd
// frame, and writes the body: the number of frames, each one's raw and
// compressed size, then the frames.
func compress(pieces [][]byte) ([]byte, error) {
	if err := codec(); err != nil {
		return nil, err
	}
	frames := make([][]byte, len(pieces))
	parallel(len(pieces), func(i int) {
		frames[i] = encoder.EncodeAll(pieces[i], make([]byte, 0, len(pieces[i])/2+512))
	})
	out := binary.AppendUvarint(nil, uint64(len(frames)))
	total := 0
	for i, f := range frames {
		out = binary.AppendUvarint(out, uint64(len(pieces[i])))
		out = binary.AppendUvarint(out, uint64(len(f)))
		total += len(f)
	}
	out = slices.Grow(out, total)
	for _, f := range frames {
		out = append(out, f...)
	}
	return out, nil
}

// decompress reads a body written by compress into one buffer, decoding the
// frames on every core at once. A body whose frames would hold more than
// limit bytes is refused before anything is decoded.
func decompress(body []byte, limit uint64) ([]byte, error) {
	if err := codec(); err != nil {
		return nil, err
	}
	r := bytes.NewReader(body)
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(len(body)) {
		return nil, errors.New("malformed frame table")
	}
	type frame struct{ raw, off, comp uint64 }
	frames := make([]frame, n)
	var rawTotal, compTotal uint64
	for i := range frames {
		raw, err1 := binary.ReadUvarint(r)
		comp, err2 := binary.ReadUvarint(r)
		if err1 != nil || err2 != nil || raw > chunkBytes || comp > uint64(len(body)) {
			return nil, errors.New("malformed frame table")
		}
		frames[i] = frame{raw: raw, off: rawTotal, comp: comp}
		rawTotal += raw
		compTotal += comp
		if rawTotal > limit {
			return nil, fmt.Errorf("body holds more than the %d bytes allowed", limit)
		}
	}
	data := body[len(body)-r.Len():]
	if compTotal != uint64(len(data)) {
		return nil, errors.New("frame sizes do not add up to the body")
	}
	raw := make([]byte, rawTotal)
	errs := make([]error, n)
	srcs := make([][]byte, n)
	for i, f := range frames {
		srcs[i], data = data[:f.comp], data[f.comp:]
	}
	parallel(int(n), func(i int) {
		f := frames[i]
		dst := raw[f.off : f.off : f.off+f.raw]
		got, err := decoder.DecodeAll(srcs[i], dst)
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("frame %d: %w", i, err)
		case uint64(len(got)) != f.raw || f.raw > 0 && &got[0] != &raw[f.off]:
			errs[i] = fmt.Errorf("frame %d does not hold the %d bytes its table says", i, f.raw)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return raw, nil
}

// parallel calls fn(0..n-1) on every core.
func parallel(n int, fn func(int)) {
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	wg.Wait()
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
	if h.Kind == wu.CheckpointMemory && h.MemoryBytes > lim.MemoryBytes {
		return nil, fmt.Errorf("it holds %d bytes of memory, more than the task's limit of %d", h.MemoryBytes, lim.MemoryBytes)
	}
	rawBytes, err := decompress(body, h.MemoryBytes/PageBytes+h.MemoryBytes+lim.DataBytes+maxFiles*(maxPathBytes+32)+64)
	if err != nil {
		return nil, err
	}
	r := bytes.NewReader(rawBytes)
	if h.Kind == wu.CheckpointMemory {
		if h.PageBytes != PageBytes || h.MemoryBytes%PageBytes != 0 {
			return nil, fmt.Errorf("page size %d or memory size %d is not this codec's", h.PageBytes, h.MemoryBytes)
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
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes left over after the app state", r.Len())
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
