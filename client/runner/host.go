package runner

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"

	"github.com/tetratelabs/wazero/sys"

	"github.com/momonga-project/momonga/workunits"
)

// virtualHost is the part of the outside world a module sees besides its
// directory: clocks, random bytes, stdin and stdout. All of it is virtual
// and counted, so that it can be carried in a checkpoint and a restored
// module sees exactly what it would have seen without the interruption
// (NOTES.md: host-provided state must be virtual and restorable). The clocks
// behave as wazero's deterministic defaults do: the wall clock starts at
// 2022-01-01 and each reading of either clock advances it by 1 ms.
type virtualHost struct {
	wall, mono int64 // last readings, in ns
	random     *randomStream
	stdin      *countingReader
	stdout     *cappedOutput
}

const (
	fakeEpoch   = 1640995200 * int64(1e9)
	clockTickNs = int64(1e6)
)

func newVirtualHost(seed string) *virtualHost {
	return &virtualHost{wall: fakeEpoch - clockTickNs, mono: -clockTickNs, random: newRandomStream(seed)}
}

func (h *virtualHost) walltime() (int64, int32) {
	h.wall += clockTickNs
	return h.wall / 1e9, int32(h.wall % 1e9)
}

func (h *virtualHost) nanotime() int64 {
	h.mono += clockTickNs
	return h.mono
}

// state is the host state for a checkpoint.
func (h *virtualHost) state() *workunits.HostState {
	st := &workunits.HostState{Walltime: h.wall, Nanotime: h.mono, RandomBytes: h.random.n}
	if h.stdin != nil {
		st.StdinBytes = h.stdin.n
	}
	if h.stdout != nil {
		st.StdoutBytes = h.stdout.written
	}
	return st
}

// restore sets the clocks and the random stream to a checkpoint's; stdin
// and stdout are the caller's to position.
func (h *virtualHost) restore(st *workunits.HostState) {
	h.wall, h.mono = st.Walltime, st.Nanotime
	h.random.skip(st.RandomBytes)
}

// clockResolution is what the module is told of both clocks.
const clockResolution = sys.ClockResolution(1000)

// randomStream is the task's random bytes: ChaCha8 keyed by the SHA-256 of a
// per-task seed, the same on every CPU, and positioned by counting.
type randomStream struct {
	r *rand.ChaCha8
	n uint64
}

func newRandomStream(seed string) *randomStream {
	return &randomStream{r: rand.NewChaCha8(sha256.Sum256([]byte("momonga random stream\x00" + seed)))}
}

func (s *randomStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += uint64(n)
	return n, err
}

func (s *randomStream) skip(n uint64) {
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, uint64(len(buf)))
		s.Read(buf[:k])
		n -= k
	}
}

// countingReader counts the bytes of stdin the module has read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
