package server

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestGatewayChecksCheckpoints: vol.H.ckpt is taken only for a stored blob
// whose framing, checksum and header match the report; the newest one goes
// with the task, and the one it replaces is deleted from the blob store.
func TestGatewayChecksCheckpoints(t *testing.T) {
	_, nc, adm := startServer(t)
	ctx := context.Background()
	module, err := wu.PrepareModule(apps.MandelR)
	if err != nil {
		t.Fatal(err)
	}
	app, err := adm.AddApp(ctx, "mandelr", module, signed(module), wu.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Submit(ctx, wu.Submit{Batch: "b", App: "mandelr", Replication: 1, Quorum: 1, Units: []wu.UnitSpec{{}}}); err != nil {
		t.Fatal(err)
	}
	if a := request(t, nc, "vol.h1.hello", wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "one", CPUs: 1}})); a.Error != nil {
		t.Fatal(a.Error)
	}
	msg, err := nc.Request("vol.h1.work", wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 1}), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var work wu.WorkReply
	if err := json.Unmarshal(msg.Data, &work); err != nil || len(work.Assignments) != 1 {
		t.Fatalf("work reply %s %v", msg.Data, err)
	}
	task := work.Assignments[0].Task

	header := func(seq uint64) wu.CheckpointHeader {
		return wu.CheckpointHeader{Kind: wu.CheckpointMemory, App: app.Hash, Task: task, Seq: seq, Progress: 0.5,
			MemoryBytes: 65536, PageBytes: 4096, Host: &wu.HostState{}}
	}
	put := func(b []byte) wu.CheckpointRef {
		t.Helper()
		h, err := adm.PutBlob(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return wu.CheckpointRef{Hash: h, Size: int64(len(b)), Seq: 1, Progress: 0.5}
	}
	seq := uint64(100)
	send := func(r wu.CheckpointRef) *wu.Error {
		seq++
		return request(t, nc, "vol.h1.ckpt", wu.Encode(wu.CheckpointReport{V: 1, Seq: seq, Task: task, App: app.Hash, Checkpoint: r})).Error
	}

	good := wu.EncodeCheckpoint(header(1), []byte("body"))
	flipped := bytes.Clone(good)
	flipped[20] ^= 1
	otherTask := header(1)
	otherTask.Task = task + "x"
	notUploaded := wu.CheckpointRef{Hash: wu.HashOf([]byte("never")), Size: 5, Seq: 1}
	wrongSeq := put(good)
	wrongSeq.Seq = 2
	for name, c := range map[string]struct {
		ref  wu.CheckpointRef
		want string
	}{
		"not uploaded":     {notUploaded, "has not been uploaded"},
		"flipped bit":      {put(flipped), "checksum"},
		"not a checkpoint": {put([]byte("just some bytes, long enough to be framed maybe")), "not a momonga checkpoint"},
		"for another task": {put(wu.EncodeCheckpoint(otherTask, nil)), "task"},
		"report disagrees": {wrongSeq, "does not match"},
	} {
		if e := send(c.ref); e == nil || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, e, c.want)
		}
	}
	first := put(good)
	if e := send(first); e != nil {
		t.Fatalf("good checkpoint refused: %v", e)
	}
	second := put(wu.EncodeCheckpoint(header(2), []byte("body 2")))
	second.Seq = 2
	if e := send(second); e != nil {
		t.Fatalf("second checkpoint refused: %v", e)
	}
	// The first is garbage now, and the lease holder deletes it. (Asked
	// through the gateway: the admin client keeps what it read.)
	stored := func(h wu.Hash) *wu.Error {
		r := blobRequest(t, nc, "vol.h1.blob.get", map[string]string{wu.HeaderHash: string(h), wu.HeaderOffset: "0"}, nil)
		return wu.ParseHeaderError(r.Header.Get(wu.HeaderError))
	}
	deadline := time.Now().Add(3 * gcInterval)
	for {
		e := stored(first.Hash)
		if e != nil && e.Code == wu.CodeNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced checkpoint was not deleted (%v)", e)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e := stored(second.Hash); e != nil {
		t.Errorf("the newest checkpoint is gone: %v", e)
	}
}
