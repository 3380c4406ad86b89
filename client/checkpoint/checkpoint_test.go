package checkpoint

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	wu "github.com/momonga-project/momonga/workunits"
)

var (
	testApp = wu.HashOf([]byte("app"))
	limits  = Limits{MemoryBytes: 1 << 30, DataBytes: 1 << 30}
)

// memory makes n pages: a quarter zero, the rest numbers of little entropy.
func memory(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	m := make([]byte, n*PageBytes)
	for i := 0; i < len(m); i += 4 {
		if (i/PageBytes)%4 == 0 {
			continue
		}
		binary.LittleEndian.PutUint32(m[i:], uint32(200+(i/PageBytes)%50*7+r.IntN(4)))
	}
	return m
}

func memState(mem []byte, seq uint64) *State {
	return &State{
		Header: wu.CheckpointHeader{Kind: wu.CheckpointMemory, App: testApp, Task: "wu1_0", Seq: seq, Progress: 0.25,
			Host: &wu.HostState{Walltime: 1, Nanotime: 2, RandomBytes: 3}, Globals: []wu.GlobalValue{{Name: "g", Type: wu.ValueI64, Bits: 1 << 40}}},
		Memory: mem,
		Files:  []File{{Path: "sub", Dir: true, Mode: 0o700}, {Path: "sub/progress", Mode: 0o644, Data: []byte("0.25\n")}},
		Output: []byte("P5\n"),
	}
}

func TestRoundTripAndDelta(t *testing.T) {
	mem := memory(256, 1)
	enc := NewEncoder()
	full, err := enc.Encode(memState(mem, 1))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := Decode([][]byte{full}, testApp, "wu1_0", limits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.Memory, mem) || len(st.Files) != 2 || string(st.Files[1].Data) != "0.25\n" || string(st.Output) != "P5\n" ||
		st.Header.Globals[0].Bits != 1<<40 || st.Header.Host.RandomBytes != 3 {
		t.Fatalf("full checkpoint did not round-trip: %+v", st.Header)
	}
	if len(full) > len(mem)/2 {
		t.Errorf("full checkpoint of %d bytes for %d bytes of memory: zero pages not skipped or not compressed", len(full), len(mem))
	}

	// One step later: a few pages changed, one zeroed, memory grew by a page.
	mem2 := append(bytes.Clone(mem), make([]byte, PageBytes)...)
	mem2[5*PageBytes] ^= 0xff
	mem2[9*PageBytes+7] = 42
	clear(mem2[1*PageBytes : 2*PageBytes])
	mem2[256*PageBytes] = 1
	delta, err := enc.Encode(memState(mem2, 2))
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := wu.ParseCheckpoint(delta)
	if h.Base != wu.HashOf(full) {
		t.Fatalf("second checkpoint is not a delta of the first (base %q)", h.Base)
	}
	if len(delta)*10 > len(full) {
		t.Errorf("delta of %d bytes is not under 10%% of the full %d", len(delta), len(full))
	}
	st2, enc2, err := Decode([][]byte{full, delta}, testApp, "wu1_0", limits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st2.Memory, mem2) || st2.Header.Seq != 2 {
		t.Fatal("delta did not restore the memory")
	}
	if _, _, err := Decode([][]byte{delta}, testApp, "wu1_0", limits); err == nil || !strings.Contains(err.Error(), "needs its base") {
		t.Errorf("delta without base: %v", err)
	}
	if _, _, err := Decode([][]byte{delta, full}, testApp, "wu1_0", limits); err == nil {
		t.Error("chain in the wrong order accepted")
	}
	// The restored encoder continues with deltas against the same base.
	third, err := enc2.Encode(memState(mem2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := wu.ParseCheckpoint(third); h.Base != wu.HashOf(full) {
		t.Errorf("checkpoint after a restore has base %q", h.Base)
	}
	// A step that changes most of memory makes a full checkpoint again.
	fourth, err := enc2.Encode(memState(memory(257, 9), 4))
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := wu.ParseCheckpoint(fourth); h.Base != "" {
		t.Error("a checkpoint changing most pages was written as a delta")
	}
}

func TestDecodeRefusesBadCheckpoints(t *testing.T) {
	full, err := NewEncoder().Encode(memState(memory(16, 1), 1))
	if err != nil {
		t.Fatal(err)
	}
	h, body, _ := wu.ParseCheckpoint(full)
	flipped := bytes.Clone(full)
	flipped[len(flipped)-40] ^= 1
	// A body that is corrupt under a valid checksum: what a buggy or hostile
	// writer could produce.
	badBody := wu.EncodeCheckpoint(h, append(bytes.Clone(body[:len(body)/2]), 0xff))
	big := h
	big.MemoryBytes = 1 << 32
	for name, c := range map[string]struct {
		blob []byte
		app  wu.Hash
		task string
		lim  Limits
		want string
	}{
		"flipped bit": {flipped, testApp, "wu1_0", limits, "checksum"},
		"truncated":   {full[:len(full)-100], testApp, "wu1_0", limits, "checksum"},
		"other app":   {full, wu.HashOf([]byte("other")), "wu1_0", limits, "app"},
		"other task":  {full, testApp, "wu2_0", limits, "task"},
		"bad body":    {badBody, testApp, "wu1_0", limits, "decode checkpoint 1"},
		"over limit":  {full, testApp, "wu1_0", Limits{MemoryBytes: PageBytes, DataBytes: 1 << 20}, "limit"},
		"huge memory": {wu.EncodeCheckpoint(big, body), testApp, "wu1_0", limits, "limit"},
	} {
		_, _, err := Decode([][]byte{c.blob}, c.app, c.task, c.lim)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
}

func TestAppCheckpoint(t *testing.T) {
	st := &State{Header: wu.CheckpointHeader{Kind: wu.CheckpointApp, App: testApp, Task: "t", Seq: 1},
		AppState: []byte("i=42"), Output: []byte("partial")}
	blob, err := NewEncoder().Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Decode([][]byte{blob}, testApp, "t", limits)
	if err != nil || string(got.AppState) != "i=42" || string(got.Output) != "partial" || got.Memory != nil {
		t.Fatalf("app checkpoint: %+v %v", got, err)
	}
}

func TestValidPath(t *testing.T) {
	for p, ok := range map[string]bool{"a": true, "a/b": true, ".momonga/state": true, "": false, "/a": false, "a/../b": false,
		"..": false, "a//b": false, "a/": false, "./a": false, "a\\b": false} {
		if validPath(p) != ok {
			t.Errorf("validPath(%q) = %v", p, !ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	enc := NewEncoder()
	full, _ := enc.Encode(memState(memory(4, 1), 1))
	m := memory(4, 1)
	m[3] = 7
	delta, _ := enc.Encode(memState(m, 2))
	_, fullBody, _ := wu.ParseCheckpoint(full)
	_, deltaBody, _ := wu.ParseCheckpoint(delta)
	f.Add(fullBody, false)
	f.Add(deltaBody, true)
	f.Fuzz(func(t *testing.T, body []byte, asDelta bool) {
		// The body is re-framed with a valid checksum, so the fuzzer reaches
		// the codec itself rather than the checksum.
		h := memState(nil, 1).Header
		h.PageBytes, h.MemoryBytes = PageBytes, 4*PageBytes
		chain := [][]byte{full}
		if asDelta {
			h.Base, h.Seq = wu.HashOf(full), 2
			chain = append(chain, wu.EncodeCheckpoint(h, body))
		} else {
			chain = [][]byte{wu.EncodeCheckpoint(h, body)}
		}
		st, _, err := Decode(chain, testApp, "wu1_0", Limits{MemoryBytes: 1 << 20, DataBytes: 1 << 20})
		if err == nil && len(st.Memory) != 4*PageBytes {
			t.Fatalf("decoded %d bytes of memory", len(st.Memory))
		}
	})
}

func BenchmarkEncode64MiB(b *testing.B) {
	mem := memory(64<<20/PageBytes, 1)
	b.SetBytes(int64(len(mem)))
	for b.Loop() {
		if _, err := NewEncoder().Encode(memState(mem, 1)); err != nil {
			b.Fatal(err)
		}
	}
}
