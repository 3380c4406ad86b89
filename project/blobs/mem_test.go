package blobs

import (
	"context"
	"errors"
	"testing"

	wu "github.com/momonga-project/momonga/workunits"
)

// A Mem answers bad uploads as a Store does (checkUpload and the errors
// they share), and keeps what was accepted before.
func TestMemUploadsRefuseBadChunks(t *testing.T) {
	ctx := context.Background()
	m := &Mem{}
	up := MemUploads{Store: m, MaxBytes: 8}
	blob := []byte("abcdef")
	h := wu.HashOf(blob)
	kept, err := m.Put(ctx, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		uploader string
		want     wu.Hash
		size     int64
		data     []byte
		code     string
	}{
		{"not a hash", "h1", "zz", 6, blob, wu.CodeBadRequest},
		{"uploader not a token", "h.1", h, 6, blob, wu.CodeBadRequest},
		{"over the limit", "h1", h, 9, blob, wu.CodeTooLarge},
		{"past the declared size", "h1", h, 4, blob, wu.CodeBadRequest},
		{"content of another hash", "h1", wu.HashOf([]byte("other!")), 6, blob, wu.CodeBadRequest},
		{"stored with another size", "h1", kept, 5, []byte("kept!"), wu.CodeBadRequest},
	} {
		_, err := up.Chunk(ctx, c.uploader, c.want, c.size, 0, c.data)
		var e *wu.Error
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%s: got %v, want code %s", c.name, err, c.code)
		}
	}
	if n, err := up.Chunk(ctx, "h1", h, 6, 0, blob[:3]); err != nil || n != 3 {
		t.Fatalf("first half: %d, %v", n, err)
	}
	if n, err := up.Chunk(ctx, "h1", h, 6, 3, blob[3:]); err != nil || n != 6 {
		t.Fatalf("second half: %d, %v", n, err)
	}
	if got, err := m.Get(ctx, h); err != nil || string(got) != string(blob) {
		t.Fatalf("stored blob: %q, %v", got, err)
	}
	if got, err := m.Get(ctx, kept); err != nil || string(got) != "kept" {
		t.Fatalf("blob stored before the bad chunks: %q, %v", got, err)
	}
	var e *wu.Error
	if _, err := m.Get(ctx, wu.HashOf([]byte("never"))); !errors.As(err, &e) || e.Code != wu.CodeNotFound {
		t.Fatalf("missing blob: %v, want code %s", err, wu.CodeNotFound)
	}
}
