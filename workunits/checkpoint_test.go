package workunits

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func sampleHeader() CheckpointHeader {
	return CheckpointHeader{Kind: CheckpointMemory, App: HashOf([]byte("app")), Task: "wu1_0", Seq: 3, Progress: 0.5,
		CPUSeconds: 12.5, MemoryBytes: 1 << 20, PageBytes: 4096, Host: &HostState{Walltime: 7},
		Globals: []GlobalValue{{Name: "momonga.global.0", Type: ValueI32, Bits: 65536}}}
}

func TestCheckpointFraming(t *testing.T) {
	h := sampleHeader()
	body := []byte("compressed pages")
	b := EncodeCheckpoint(h, body)
	got, gotBody, err := ParseCheckpoint(b)
	if err != nil || !bytes.Equal(gotBody, body) || got.Globals[0].Bits != 65536 || got.Host.Walltime != 7 {
		t.Fatalf("round trip: %+v %q %v", got, gotBody, err)
	}
	if err := got.Check(h.App, "wu1_0"); err != nil {
		t.Fatal(err)
	}

	newer := bytes.Clone(b)
	binary.LittleEndian.PutUint16(newer[8:], CheckpointVersion+1)
	flipped := bytes.Clone(b)
	flipped[len(flipped)/2] ^= 0x10
	bad := map[string]struct {
		b    []byte
		want string
	}{
		"flipped bit":   {flipped, "checksum"},
		"truncated":     {b[:len(b)-7], "checksum"},
		"truncated far": {b[:5], "truncated"},
		"not ours":      {[]byte("\x00asm\x01\x00\x00\x00 and more bytes than the header needs"), "not a momonga checkpoint"},
		"newer version": {newer, "newer than this program reads"},
		"empty":         {nil, "truncated"},
	}
	for name, c := range bad {
		_, _, err := ParseCheckpoint(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
	}
	if err := got.Check(HashOf([]byte("other")), "wu1_0"); err == nil || !strings.Contains(err.Error(), "app") {
		t.Errorf("other app: %v", err)
	}
	if err := got.Check(h.App, "wu1_1"); err == nil || !strings.Contains(err.Error(), "task") {
		t.Errorf("other task: %v", err)
	}
	noHost := h
	noHost.Host = nil
	if _, _, err := ParseCheckpoint(EncodeCheckpoint(noHost, body)); err == nil {
		t.Error("memory checkpoint without host state accepted")
	}
}

func TestCheckpointReport(t *testing.T) {
	h := sampleHeader()
	r := CheckpointReport{Seq: 1, Task: h.Task, App: h.App, Checkpoint: CheckpointRef{Hash: HashOf([]byte("c")), Size: 10,
		Seq: h.Seq, Progress: h.Progress, CPUSeconds: h.CPUSeconds}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := r.Matches(h); err != nil {
		t.Fatal(err)
	}
	r.Checkpoint.Seq++
	if err := r.Matches(h); err == nil {
		t.Error("report with another seq matched")
	}
	r.Checkpoint.Base = "nothex"
	if err := r.Validate(); err == nil {
		t.Error("malformed base accepted")
	}
	if got := (&CheckpointRef{Hash: "b", Base: "a"}).Blobs(); len(got) != 2 || got[0] != "a" {
		t.Errorf("blobs of a delta: %v", got)
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add(EncodeCheckpoint(sampleHeader(), []byte("body")))
	f.Add([]byte(CheckpointMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := ParseCheckpoint(b)
		if err != nil {
			return
		}
		if len(body) > len(b) || h.Seq == 0 {
			t.Fatalf("accepted a malformed checkpoint: %+v", h)
		}
	})
}
