package blobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	wu "github.com/momonga-project/momonga/workunits"
)

// flaky answers GetBytes with what a read across a change of the object's
// chunks gives (the object store's digest check failing) for its first
// bad reads, then with the stored object; corrupt makes it return other
// bytes, which no retry cures.
type flaky struct {
	jetstream.ObjectStore
	bad     int
	corrupt bool
	reads   int
}

func (f *flaky) GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error) {
	f.reads++
	if f.corrupt {
		return []byte("not the blob"), nil
	}
	if f.reads <= f.bad {
		return nil, jetstream.ErrDigestMismatch
	}
	return f.ObjectStore.GetBytes(ctx, name, opts...)
}

// StartJetStream starts a JetStream server in the test's process, stopped
// when the test ends, and returns a client of it (for this package's
// tests, inside and outside the package).
func StartJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestGetReadsAgainAfterADigestMismatch(t *testing.T) {
	ctx := context.Background()
	js := StartJetStream(t)
	store, err := Open(ctx, js, Bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("momonga "), 50_000)
	h, err := store.Put(ctx, blob)
	if err != nil {
		t.Fatal(err)
	}
	real := store.obs

	// Mismatches that pass: read again until the object reads whole.
	f := &flaky{ObjectStore: real, bad: getTries - 1}
	s := &Store{obs: f, cache: map[wu.Hash][]byte{}}
	b, err := s.Get(ctx, h)
	if err != nil || !bytes.Equal(b, blob) {
		t.Fatalf("after %d mismatches: %d bytes, %v", f.bad, len(b), err)
	}
	if f.reads != getTries {
		t.Errorf("read %d times, want %d", f.reads, getTries)
	}

	// Mismatches that last: the blob is called corrupt.
	f = &flaky{ObjectStore: real, bad: getTries}
	s = &Store{obs: f, cache: map[wu.Hash][]byte{}}
	if _, err := s.Get(ctx, h); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("after %d mismatches: %v, want the blob called corrupt", f.bad, err)
	}

	// Bytes that are not the blob, however often they are read.
	f = &flaky{ObjectStore: real, corrupt: true}
	s = &Store{obs: f, cache: map[wu.Hash][]byte{}}
	if _, err := s.Get(ctx, h); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("other bytes: %v, want the blob called corrupt", err)
	}
	if f.reads != getTries {
		t.Errorf("other bytes read %d times, want %d", f.reads, getTries)
	}
}

// failingPut fails its first Put, as a time-out or a server away would.
type failingPut struct {
	jetstream.ObjectStore
	failed bool
}

func (f *failingPut) Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	if !f.failed {
		f.failed = true
		_, _ = io.Copy(io.Discard, r)
		return nil, errors.New("nats: timeout")
	}
	return f.ObjectStore.Put(ctx, meta, r)
}

// An upload whose blob fails to be stored keeps its staged chunks: the
// uploader's next try of the last chunk stores the blob without sending
// the rest again, and only then is it told the project holds it all.
func TestUploadKeptWhenTheBlobFailsToBeStored(t *testing.T) {
	ctx := context.Background()
	js := StartJetStream(t)
	store, err := Open(ctx, js, Bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	store.obs = &failingPut{ObjectStore: store.obs}
	up, err := OpenUploads(ctx, js, store, 1, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("momonga "), 2*ChunkBytes/8+100)
	h, size := wu.HashOf(blob), int64(len(blob))
	var last int64
	for off := int64(0); off < size; off += ChunkBytes {
		last = off
		done, err := up.Chunk(ctx, "h1", h, size, off, blob[off:min(off+ChunkBytes, size)])
		if off+ChunkBytes < size && (err != nil || done != off+ChunkBytes) {
			t.Fatalf("chunk at %d: done %d, %v", off, done, err)
		}
		if off+ChunkBytes >= size && err == nil {
			t.Fatalf("the last chunk was taken (done %d) though the blob could not be stored", done)
		}
	}
	info, err := up.stream.Info(ctx)
	if err != nil || info.State.Msgs != 3 {
		t.Fatalf("staged chunks after the failed store: %+v, %v; want all 3 kept", info.State, err)
	}
	done, err := up.Chunk(ctx, "h1", h, size, last, blob[last:])
	if err != nil || done != size {
		t.Fatalf("the last chunk again: done %d, %v; want %d", done, err, size)
	}
	if b, err := store.Get(ctx, h); err != nil || !bytes.Equal(b, blob) {
		t.Fatalf("stored blob: %d bytes, %v", len(b), err)
	}
	if info, err := up.stream.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Fatalf("staged chunks left after the blob was stored: %+v, %v", info.State, err)
	}
}

// lagging answers its first misses reads as a replica that has not yet
// applied a put does: no such object.
type lagging struct {
	jetstream.ObjectStore
	misses, reads int
}

func (l *lagging) GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error) {
	if l.reads++; l.reads <= l.misses {
		return nil, jetstream.ErrObjectNotFound
	}
	return l.ObjectStore.GetBytes(ctx, name, opts...)
}

func (l *lagging) GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	if l.reads++; l.reads <= l.misses {
		return nil, jetstream.ErrObjectNotFound
	}
	return l.ObjectStore.GetInfo(ctx, name, opts...)
}

// On a replicated store, a blob just stored through another server may be
// missing from the replica that answers: it is looked for again before it
// is called missing. A single replica has no lag: one look is the answer.
func TestReplicaLagIsWaitedOut(t *testing.T) {
	ctx := context.Background()
	js := StartJetStream(t)
	store, err := Open(ctx, js, Bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("just uploaded")
	h, err := store.Put(ctx, blob)
	if err != nil {
		t.Fatal(err)
	}
	absent := wu.HashOf([]byte("never uploaded"))
	real := store.obs
	for _, replicated := range []bool{true, false} {
		read := func(f func(s *Store) error) (reads int, err error) {
			l := &lagging{ObjectStore: real, misses: 2}
			s := &Store{obs: l, replicated: replicated, cache: map[wu.Hash][]byte{}}
			err = f(s)
			return l.reads, err
		}
		reads, err := read(func(s *Store) error {
			b, err := s.Get(ctx, h)
			if err == nil && !bytes.Equal(b, blob) {
				err = errors.New("other bytes")
			}
			return err
		})
		if replicated && (err != nil || reads != 3) {
			t.Errorf("replicated Get: %v after %d reads; want the blob at the third", err, reads)
		}
		if !replicated && (err == nil || reads != 1) {
			t.Errorf("single-replica Get: %v after %d reads; want not found at once", err, reads)
		}
		reads, err = read(func(s *Store) error {
			n, ok, err := s.Size(ctx, h)
			if err == nil && (!ok || n != int64(len(blob))) {
				err = fmt.Errorf("size %d, stored %v", n, ok)
			}
			return err
		})
		if replicated && (err != nil || reads != 3) {
			t.Errorf("replicated Size: %v after %d reads; want the blob at the third", err, reads)
		}
		if !replicated && (err == nil || reads != 1) {
			t.Errorf("single-replica Size: %v after %d reads; want not stored at once", err, reads)
		}
		reads, err = read(func(s *Store) error {
			_, err := s.Get(ctx, absent)
			return err
		})
		want := 1
		if replicated {
			want = missTries
		}
		if e, ok := errors.AsType[*wu.Error](err); !ok || e.Code != wu.CodeNotFound || reads != want {
			t.Errorf("replicated %v, a blob never stored: %v after %d reads; want not found after %d", replicated, err, reads, want)
		}
	}
}
