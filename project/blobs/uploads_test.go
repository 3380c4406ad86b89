package blobs_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/momonga-project/momonga/project/blobs"
	wu "github.com/momonga-project/momonga/workunits"
)

// Two gateways (two Uploads on one stream) take alternate chunks of one
// upload, as a queue group spreads them in a cluster; the blob is stored
// whole once, and a retried chunk or a chunk out of place only tells the
// uploader where the upload stands.
func TestUploadChunksReachDifferentGateways(t *testing.T) {
	ctx := context.Background()
	js := blobs.StartJetStream(t)
	store, err := blobs.Open(ctx, js, blobs.Bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	var gws [2]*blobs.Uploads
	for i := range gws {
		if gws[i], err = blobs.OpenUploads(ctx, js, store, 1, 8<<20); err != nil {
			t.Fatal(err)
		}
	}
	blob := bytes.Repeat([]byte("momonga "), 3*blobs.ChunkBytes/8+100)
	h, size := wu.HashOf(blob), int64(len(blob))
	chunk := func(off int64) []byte { return blob[off:min(off+blobs.ChunkBytes, size)] }

	done, err := gws[0].Chunk(ctx, "h1", h, size, 0, chunk(0))
	if err != nil || done != blobs.ChunkBytes {
		t.Fatalf("first chunk: done %d, %v", done, err)
	}
	// The same chunk again, at the other gateway: nothing changes.
	if done, err = gws[1].Chunk(ctx, "h1", h, size, 0, chunk(0)); err != nil || done != blobs.ChunkBytes {
		t.Fatalf("retried first chunk: done %d, %v", done, err)
	}
	// A chunk past the end of what is staged: start from where it stands.
	if done, err = gws[1].Chunk(ctx, "h1", h, size, 2*blobs.ChunkBytes, chunk(2*blobs.ChunkBytes)); err != nil || done != blobs.ChunkBytes {
		t.Fatalf("chunk out of place: done %d, %v", done, err)
	}
	for off, i := int64(blobs.ChunkBytes), 1; off < size; off, i = off+blobs.ChunkBytes, i+1 {
		if done, err = gws[i%2].Chunk(ctx, "h1", h, size, off, chunk(off)); err != nil {
			t.Fatalf("chunk at %d: %v", off, err)
		}
	}
	if done != size {
		t.Fatalf("after the last chunk the project holds %d of %d bytes", done, size)
	}
	got, err := store.Get(ctx, h)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("stored blob: %d bytes, %v", len(got), err)
	}
	st, err := js.Stream(ctx, blobs.UploadsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Fatalf("staged chunks left after the upload: %+v, %v", info.State, err)
	}

	// Content that does not hash to what the uploader claims is refused.
	other := bytes.Repeat([]byte("x"), 1000)
	if _, err := gws[0].Chunk(ctx, "h2", wu.HashOf(blob[:1000]), 1000, 0, other); err == nil {
		t.Fatal("an upload with the wrong content was accepted")
	}
	// A bad uploader name or a size over the limit is refused.
	if _, err := gws[0].Chunk(ctx, "h.*", h, size, 0, chunk(0)); err == nil {
		t.Fatal("an uploader that is no subject token was accepted")
	}
	if _, err := gws[0].Chunk(ctx, "h3", wu.HashOf(other), 9<<20, 0, other); err == nil {
		t.Fatal("a blob over the limit was accepted")
	}
}
