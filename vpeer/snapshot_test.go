package vpeer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"
)

func TestSnapshotEncoding(t *testing.T) {
	state := bytes.Repeat([]byte("the state of a machine "), 50)
	for _, at := range []time.Time{{}, time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)} {
		for _, term := range []uint64{0, 77} {
			hash := stateHash(at, term, state)
			var buf bytes.Buffer
			if err := encodeSnapshot(&buf, 42, at, term, hash, state); err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			info, got, err := decodeSnapshot(data)
			if err != nil || !bytes.Equal(got, state) || info.Seq != 42 || !info.Time.Equal(at) || info.Time.IsZero() != at.IsZero() ||
				info.Term != term || info.Size != int64(len(data)) {
				t.Fatalf("decoded %+v and %d bytes (%v)", info, len(got), err)
			}
			// Every single bit flip and every truncation is refused.
			for i := range data {
				bad := bytes.Clone(data)
				bad[i] ^= 1 << (i % 8)
				if _, _, err := decodeSnapshot(bad); err == nil {
					t.Fatalf("bit flip in byte %d of %d accepted", i, len(data))
				}
				if _, _, err := decodeSnapshot(data[:i]); err == nil {
					t.Fatalf("truncation to %d of %d bytes accepted", i, len(data))
				}
			}
		}
	}
	if stateHash(time.Time{}, 0, []byte("a")) == stateHash(time.Unix(1, 0), 0, []byte("a")) {
		t.Fatal("the state hash ignores the time")
	}
	if stateHash(time.Time{}, 0, []byte("a")) == stateHash(time.Time{}, 1, []byte("a")) {
		t.Fatal("the state hash ignores the term")
	}
}

// snapshotV1 is a snapshot as version 1 stored it, before lease terms.
func snapshotV1(seq uint64, at time.Time, state []byte) []byte {
	hdr := make([]byte, headerV1)
	copy(hdr, snapshotMagic)
	binary.BigEndian.PutUint16(hdr[8:], 1)
	binary.BigEndian.PutUint16(hdr[10:], 1)
	binary.BigEndian.PutUint64(hdr[12:], seq)
	binary.BigEndian.PutUint64(hdr[20:], uint64(at.UnixNano()))
	hash := stateHash(at, 0, state)
	copy(hdr[28:], hash[:])
	data := append(hdr, state...)
	sum := sha256.Sum256(data)
	return append(data, sum[:]...)
}

// TestSnapshotVersion1 reads the snapshots stored before terms: term 0,
// and the state hash they recorded.
func TestSnapshotVersion1(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	state := []byte("old state")
	info, got, err := decodeSnapshot(snapshotV1(9, at, state))
	want := stateHash(at, 0, state)
	if err != nil || info.Seq != 9 || !info.Time.Equal(at) || info.Term != 0 || !bytes.Equal(got, state) || info.Hash != hex.EncodeToString(want[:]) {
		t.Fatalf("version 1 snapshot decoded as %+v, %q (%v)", info, got, err)
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	var buf bytes.Buffer
	state := []byte("state")
	at := time.Unix(1, 2)
	_ = encodeSnapshot(&buf, 3, at, 4, stateHash(at, 4, state), state)
	f.Add(buf.Bytes())
	f.Add(snapshotV1(3, at, state))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, got, err := decodeSnapshot(data)
		if err != nil {
			return
		}
		// What decodes encodes again (in the current version) to a
		// snapshot that decodes to the same.
		var h [sha256.Size]byte
		if _, err := hex.Decode(h[:], []byte(info.Hash)); err != nil {
			t.Fatalf("decoded hash %q: %v", info.Hash, err)
		}
		var again bytes.Buffer
		if err := encodeSnapshot(&again, info.Seq, info.Time, info.Term, h, got); err != nil {
			t.Fatal(err)
		}
		info2, got2, err := decodeSnapshot(again.Bytes())
		info.Size, info2.Size = 0, 0
		if err != nil || info2 != info || !bytes.Equal(got2, got) {
			t.Fatalf("%x decodes to %+v; encoded again, to %+v (%v)", data, info, info2, err)
		}
	})
}
