package vpeer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// SnapshotInfo describes a stored snapshot.
type SnapshotInfo struct {
	Seq uint64 `json:"seq"` // the last log record the snapshot covers: replay resumes at Seq+1
	// Time is Entry.Time at Seq, which a restored member carries on from.
	Time time.Time `json:"time,omitzero"`
	// Term is the highest lease term of a record applied up to Seq: a
	// restored member fences older ones as every other member does.
	Term uint64 `json:"term,omitempty"`
	// Hash is the state hash at Seq, as every member records it there
	// (Checkpoint.Hash).
	Hash   string    `json:"hash"`
	Size   int64     `json:"size"`   // bytes stored, compressed if the store compresses
	Stored time.Time `json:"stored"` // when it was stored, by the storing member's clock
}

// SnapshotStore keeps the snapshots of one virtual peer. The jetlog
// subpackage keeps them zstd-compressed in a JetStream object store;
// MemSnapshots keeps them in memory. A store holds what it is given: the
// member checks what it reads back.
type SnapshotStore interface {
	// Put stores the snapshot read from data under info.Seq, replacing any
	// snapshot stored under that sequence number.
	Put(ctx context.Context, info SnapshotInfo, data io.Reader) error
	// List returns the stored snapshots, oldest first.
	List(ctx context.Context) ([]SnapshotInfo, error)
	// Open returns the data of the snapshot stored under seq.
	Open(ctx context.Context, seq uint64) (io.ReadCloser, error)
	// Delete removes the snapshot stored under seq; removing one that is not
	// there is not an error.
	Delete(ctx context.Context, seq uint64) error
}

// ErrNoSnapshot is returned by SnapshotStore.Open for a sequence number
// under which no snapshot is stored.
var ErrNoSnapshot = errors.New("vpeer: no such snapshot")

// Checkpoint is the hash of a member's state at a snapshot point. Members
// that applied the same log have equal hashes at equal sequence numbers.
type Checkpoint struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// A stored snapshot is a header, the machine's snapshot, and the SHA-256 of
// everything before it, so that a bit flip or a truncation is found before
// anything is restored:
//
//	magic       8 bytes  "vpeersnp"
//	version     uint16   2 (1: no term)
//	flags       uint16   bit 0: Time is set
//	seq         uint64
//	time        int64    unix nanoseconds
//	term        uint64   version 2 only
//	state hash  32 bytes
//	state       the machine's snapshot, to the trailer
//	checksum    32 bytes SHA-256 of all the above
//
// Integers are big-endian. Readers refuse versions they do not know.
const (
	snapshotMagic   = "vpeersnp"
	snapshotVersion = 2
	// headerV1 and headerV2 are the header's lengths in each version.
	headerV1 = 8 + 2 + 2 + 8 + 8 + sha256.Size
	headerV2 = headerV1 + 8
)

// stateHash is the hash members compare: the machine's snapshot and what
// the member carries beside it, the time and the lease term (the term only
// once there is one, so that hashes from before terms keep their value).
func stateHash(at time.Time, term uint64, state []byte) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	if !at.IsZero() {
		binary.BigEndian.PutUint64(b[:], uint64(at.UnixNano()))
	}
	h.Write(b[:])
	if term != 0 {
		h.Write(binary.BigEndian.AppendUint64(nil, term))
	}
	h.Write(state)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// encodeSnapshot writes the stored form of state, the machine's snapshot at
// seq with Entry.Time at and the lease term term.
func encodeSnapshot(w io.Writer, seq uint64, at time.Time, term uint64, hash [sha256.Size]byte, state []byte) error {
	var hdr [headerV2]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint16(hdr[8:], snapshotVersion)
	if !at.IsZero() {
		binary.BigEndian.PutUint16(hdr[10:], 1)
		binary.BigEndian.PutUint64(hdr[20:], uint64(at.UnixNano()))
	}
	binary.BigEndian.PutUint64(hdr[12:], seq)
	binary.BigEndian.PutUint64(hdr[28:], term)
	copy(hdr[36:], hash[:])
	sum := sha256.New()
	sum.Write(hdr[:])
	sum.Write(state)
	for _, b := range [][]byte{hdr[:], state, sum.Sum(nil)} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// decodeSnapshot checks a stored snapshot and returns what its header says
// and the machine's snapshot.
func decodeSnapshot(data []byte) (info SnapshotInfo, state []byte, err error) {
	if len(data) < headerV1+sha256.Size {
		return info, nil, fmt.Errorf("snapshot of %d bytes is truncated", len(data))
	}
	body, trailer := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], trailer) {
		return info, nil, errors.New("snapshot checksum mismatch: corrupt or truncated")
	}
	if string(body[:8]) != snapshotMagic {
		return info, nil, errors.New("not a snapshot")
	}
	header := headerV1
	switch v := binary.BigEndian.Uint16(body[8:]); v {
	case 1:
	case 2:
		if len(body) < headerV2 {
			return info, nil, fmt.Errorf("snapshot of %d bytes is truncated", len(data))
		}
		header = headerV2
		info.Term = binary.BigEndian.Uint64(body[28:])
	default:
		return info, nil, fmt.Errorf("snapshot version %d, this member reads 1 and %d", v, snapshotVersion)
	}
	info.Seq = binary.BigEndian.Uint64(body[12:])
	if binary.BigEndian.Uint16(body[10:])&1 != 0 {
		info.Time = time.Unix(0, int64(binary.BigEndian.Uint64(body[20:]))).UTC()
	}
	info.Hash = hex.EncodeToString(body[header-sha256.Size : header])
	info.Size = int64(len(data))
	return info, body[header:], nil
}

// MemSnapshots is a SnapshotStore in memory, for tests. The zero value is
// an empty store ready to use; it is safe for concurrent use.
type MemSnapshots struct {
	mu    sync.Mutex
	snaps map[uint64]memSnapshot
}

type memSnapshot struct {
	info SnapshotInfo
	data []byte
}

var _ SnapshotStore = (*MemSnapshots)(nil)

// Put implements SnapshotStore.
func (s *MemSnapshots) Put(ctx context.Context, info SnapshotInfo, data io.Reader) error {
	b, err := io.ReadAll(data)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snaps == nil {
		s.snaps = make(map[uint64]memSnapshot)
	}
	info.Size = int64(len(b))
	s.snaps[info.Seq] = memSnapshot{info, b}
	return nil
}

// List implements SnapshotStore.
func (s *MemSnapshots) List(ctx context.Context) ([]SnapshotInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var infos []SnapshotInfo
	for _, sn := range s.snaps {
		infos = append(infos, sn.info)
	}
	slices.SortFunc(infos, func(a, b SnapshotInfo) int { return cmp.Compare(a.Seq, b.Seq) })
	return infos, nil
}

// Open implements SnapshotStore.
func (s *MemSnapshots) Open(ctx context.Context, seq uint64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.snaps[seq]
	if !ok {
		return nil, fmt.Errorf("snapshot %d: %w", seq, ErrNoSnapshot)
	}
	return io.NopCloser(bytes.NewReader(sn.data)), nil
}

// Delete implements SnapshotStore.
func (s *MemSnapshots) Delete(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.snaps, seq)
	return nil
}
