package jetlog

import (
	"bytes"
	"testing"

	"github.com/momonga-project/momonga/vpeer"
)

func TestBatchRoundTrip(t *testing.T) {
	b := []vpeer.Request{{ReplyTo: "_INBOX.a.1", Payload: []byte(`{"op":"work"}`)}, {Payload: nil}, {ReplyTo: "x", Payload: bytes.Repeat([]byte{7}, 300)}}
	got, err := decodeBatch(encodeBatch(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(b) {
		t.Fatalf("decoded %d requests, want %d", len(got), len(b))
	}
	for i := range b {
		if got[i].ReplyTo != b[i].ReplyTo || !bytes.Equal(got[i].Payload, b[i].Payload) {
			t.Fatalf("request %d = %+v, want %+v", i, got[i], b[i])
		}
	}
	whole := encodeBatch(b)
	for _, bad := range [][]byte{nil, {0}, {5, 0, 0}, whole[:len(whole)-1], append(bytes.Clone(whole), 0), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := decodeBatch(bad); err == nil {
			t.Errorf("decoded % x without an error", bad)
		}
	}
}

// FuzzDecodeBatch: whatever a record's data, decoding it fails or gives
// requests that encode to data that decodes to them again.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([]vpeer.Request{{ReplyTo: "r", Payload: []byte("p")}, {}}))
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{2, 1, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBatch(data)
		if err != nil {
			return
		}
		again, err := decodeBatch(encodeBatch(b))
		if err != nil || len(again) != len(b) {
			t.Fatalf("% x decoded to %d requests, which encode to %d requests (%v)", data, len(b), len(again), err)
		}
		for i := range b {
			if again[i].ReplyTo != b[i].ReplyTo || !bytes.Equal(again[i].Payload, b[i].Payload) {
				t.Fatalf("request %d of % x: %+v, then %+v", i, data, b[i], again[i])
			}
		}
	})
}
