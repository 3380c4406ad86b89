package vpeertest

import (
	"bytes"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

func TestKVSnapshotRestore(t *testing.T) {
	kv := NewKV()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := []vpeer.Entry{
		{Seq: 1, Payload: []byte("set a 10")},
		{Seq: 2, Time: at, Tick: true},
		{Seq: 3, Time: at, Payload: []byte("move a b 4")},
	}
	for _, e := range entries {
		kv.Apply(e)
	}
	var buf bytes.Buffer
	if err := kv.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	restored := NewKV()
	if err := restored.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	next := vpeer.Entry{Seq: 4, Time: at, Payload: []byte("add b 1")}
	if a, b := string(kv.Apply(next)), string(restored.Apply(next)); a != b || a != "5" {
		t.Fatalf("after restore: reply %q, original %q, want 5", b, a)
	}
	if kv.Digest() != restored.Digest() || restored.Ticks() != 1 || !restored.Time().Equal(at) || restored.Get("a") != 6 {
		t.Fatalf("restored KV differs: digest %s vs %s, ticks %d, time %v, a %d", restored.Digest(), kv.Digest(), restored.Ticks(), restored.Time(), restored.Get("a"))
	}
}
