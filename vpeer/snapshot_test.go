package vpeer

import (
	"bytes"
	"testing"
	"time"
)

func TestSnapshotEncoding(t *testing.T) {
	state := bytes.Repeat([]byte("the state of a machine "), 50)
	for _, at := range []time.Time{{}, time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)} {
		hash := stateHash(at, state)
		var buf bytes.Buffer
		if err := encodeSnapshot(&buf, 42, at, hash, state); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		info, got, err := decodeSnapshot(data)
		if err != nil || !bytes.Equal(got, state) || info.Seq != 42 || !info.Time.Equal(at) || info.Time.IsZero() != at.IsZero() || info.Size != int64(len(data)) {
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
	if stateHash(time.Time{}, []byte("a")) == stateHash(time.Unix(1, 0), []byte("a")) {
		t.Fatal("the state hash ignores the time")
	}
}
