// Package vpeertest helps test virtual peers (DESIGN §5): KV, a small
// deterministic StateMachine; TestLog, TestSnapshotStore and TestRegistry,
// the behaviour every vpeer.Log, vpeer.SnapshotStore and vpeer.Registry
// must show; TestMember, TestSnapshots and TestGroup, the behaviour of
// vpeer.Member and vpeer.Group over given ones; StartMember and StartGroup,
// which run them for a test and let it kill and replace members; and
// CheckFor, which polls for a condition with a deadline instead of sleeping.
package vpeertest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// KV is a deterministic StateMachine of named integer counters, driven by
// text commands:
//
//	add K N     adds N to K; replies the new value
//	set K N     sets K to N; replies "ok"; outputs Set{K, N}
//	get K       replies the value of K
//	move A B N  moves N from A to B; replies "ok"
//	time        replies Entry.Time in unix nanoseconds, or "zero"
//	nop         replies nothing
//
// Anything else replies "error: …". KV is a vpeer.Emitter: Outputs lists
// the Set of the last entry, if it was one. Digest sums up every entry applied, so
// two KVs with equal digests applied the same entries in the same order
// with the same times. A KV is not safe for concurrent use: read it inside
// vpeer.Member.Query while a member runs.
type KV struct {
	vals   map[string]int64
	last   uint64
	time   time.Time
	ticks  int
	digest [sha256.Size]byte
	outs   []any // of the last entry
}

// Set is the output of a set command.
type Set struct {
	Key   string
	Value int64
}

// NewKV returns an empty KV.
func NewKV() *KV { return &KV{vals: make(map[string]int64)} }

// Apply implements vpeer.StateMachine.
func (kv *KV) Apply(e vpeer.Entry) []byte {
	kv.outs = kv.outs[:0]
	kv.fold(e)
	kv.last = e.Seq
	kv.time = e.Time
	if e.Tick {
		kv.ticks++
		return nil
	}
	f := strings.Fields(string(e.Payload))
	if len(f) == 0 {
		return []byte("error: empty command")
	}
	switch {
	case f[0] == "add" && len(f) == 3:
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return []byte("error: " + err.Error())
		}
		kv.vals[f[1]] += n
		return []byte(strconv.FormatInt(kv.vals[f[1]], 10))
	case f[0] == "set" && len(f) == 3:
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return []byte("error: " + err.Error())
		}
		kv.vals[f[1]] = n
		kv.outs = append(kv.outs, Set{f[1], n})
		return []byte("ok")
	case f[0] == "get" && len(f) == 2:
		return []byte(strconv.FormatInt(kv.vals[f[1]], 10))
	case f[0] == "move" && len(f) == 4:
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return []byte("error: " + err.Error())
		}
		kv.vals[f[1]] -= n
		// Gives an unsynchronised reader the chance to see the amount in
		// flight, which the Query tests must never see.
		runtime.Gosched()
		kv.vals[f[2]] += n
		return []byte("ok")
	case f[0] == "time" && len(f) == 1:
		if e.Time.IsZero() {
			return []byte("zero")
		}
		return []byte(strconv.FormatInt(e.Time.UnixNano(), 10))
	case f[0] == "nop" && len(f) == 1:
		return nil
	}
	return []byte("error: unknown command " + strconv.Quote(string(e.Payload)))
}

// fold chains e into the digest.
func (kv *KV) fold(e vpeer.Entry) {
	h := sha256.New()
	h.Write(kv.digest[:])
	var b [17]byte
	binary.BigEndian.PutUint64(b[0:], e.Seq)
	if !e.Time.IsZero() {
		binary.BigEndian.PutUint64(b[8:], uint64(e.Time.UnixNano()))
	}
	if e.Tick {
		b[16] = 1
	}
	h.Write(b[:])
	h.Write(e.Payload)
	h.Sum(kv.digest[:0])
}

// Outputs implements vpeer.Emitter.
func (kv *KV) Outputs() []any { return kv.outs }

// Get returns the value of counter k.
func (kv *KV) Get(k string) int64 { return kv.vals[k] }

// Last returns the sequence number of the last entry applied.
func (kv *KV) Last() uint64 { return kv.last }

// Time returns Entry.Time of the last entry applied.
func (kv *KV) Time() time.Time { return kv.time }

// Ticks returns how many Tick entries were applied.
func (kv *KV) Ticks() int { return kv.ticks }

// Digest sums up every entry applied, in hex.
func (kv *KV) Digest() string { return hex.EncodeToString(kv.digest[:]) }

type kvSnapshot struct {
	Version int              `json:"v"`
	Vals    map[string]int64 `json:"vals"`
	Last    uint64           `json:"last"`
	Time    *int64           `json:"time,omitempty"` // unix nanoseconds; absent for the zero time
	Ticks   int              `json:"ticks"`
	Digest  string           `json:"digest"`
}

// Snapshot implements vpeer.StateMachine.
func (kv *KV) Snapshot(w io.Writer) error {
	s := kvSnapshot{Version: 1, Vals: kv.vals, Last: kv.last, Ticks: kv.ticks, Digest: kv.Digest()}
	if !kv.time.IsZero() {
		ns := kv.time.UnixNano()
		s.Time = &ns
	}
	if err := json.NewEncoder(w).Encode(s); err != nil {
		return fmt.Errorf("snapshot kv: %w", err)
	}
	return nil
}

// Restore implements vpeer.StateMachine.
func (kv *KV) Restore(r io.Reader) error {
	var s kvSnapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("restore kv: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("restore kv: snapshot version %d, want 1", s.Version)
	}
	d, err := hex.DecodeString(s.Digest)
	if err != nil || len(d) != sha256.Size {
		return fmt.Errorf("restore kv: bad digest %q", s.Digest)
	}
	*kv = KV{vals: s.Vals, last: s.Last, ticks: s.Ticks}
	if kv.vals == nil {
		kv.vals = make(map[string]int64)
	}
	if s.Time != nil {
		kv.time = time.Unix(0, *s.Time).UTC()
	}
	copy(kv.digest[:], d)
	return nil
}
