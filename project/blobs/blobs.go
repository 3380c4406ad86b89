// Package blobs keeps the project's content-addressed blobs (apps, inputs,
// results) in a JetStream object store, each named by its SHA-256 (DESIGN §1).
//
// It also serves the chunked transfer that volunteers use: they never reach
// the JetStream API themselves, so the gateway reads and writes blobs on their
// behalf through a Store and an Uploads.
package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	wu "github.com/momonga-project/momonga/workunits"
)

// Bucket is the object store bucket of a project's blobs.
const Bucket = "BLOBS"

// ChunkBytes is the size of one chunk of a blob transfer, well under NATS's
// default 1 MiB payload limit.
const ChunkBytes = 512 << 10

// Store is the blob store of one project.
type Store struct {
	obs jetstream.ObjectStore

	mu    sync.Mutex
	cache map[wu.Hash][]byte // recently read blobs, for chunked downloads
	order []wu.Hash
	bytes int
}

// cacheBytes bounds the memory kept for serving chunked downloads: many
// volunteers fetch the same app, chunk by chunk.
const cacheBytes = 64 << 20

// Open creates (or opens) the bucket and returns its Store.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Store, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "momonga blobs by sha-256",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Compression: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", bucket, err)
	}
	return &Store{obs: obs, cache: map[wu.Hash][]byte{}}, nil
}

// Put stores b and returns its hash. Storing a blob that is there already
// does nothing.
func (s *Store) Put(ctx context.Context, b []byte) (wu.Hash, error) {
	h := wu.HashOf(b)
	if _, ok, err := s.Size(ctx, h); err != nil || ok {
		return h, err
	}
	if _, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: string(h)}, bytes.NewReader(b)); err != nil {
		return "", fmt.Errorf("put blob %s: %w", h.Short(), err)
	}
	return h, nil
}

// PutVerified stores what r yields under want, after checking that its
// SHA-256 is want. r is read twice (hash, then store), so it must be a file
// or similar that can seek back.
func (s *Store) PutVerified(ctx context.Context, want wu.Hash, r io.ReadSeeker) error {
	sum := sha256.New()
	if _, err := io.Copy(sum, r); err != nil {
		return fmt.Errorf("hash blob %s: %w", want.Short(), err)
	}
	if got := wu.Hash(hex.EncodeToString(sum.Sum(nil))); got != want {
		return wu.Errorf(wu.CodeBadRequest, "blob content hashes to %s, not %s", got.Short(), want.Short())
	}
	if _, ok, err := s.Size(ctx, want); err != nil || ok {
		return err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind blob %s: %w", want.Short(), err)
	}
	if _, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: string(want)}, r); err != nil {
		return fmt.Errorf("put blob %s: %w", want.Short(), err)
	}
	return nil
}

// Size reports whether a blob is stored, and its size.
func (s *Store) Size(ctx context.Context, h wu.Hash) (int64, bool, error) {
	if !h.Valid() {
		return 0, false, wu.Errorf(wu.CodeBadRequest, "%q is not a sha-256", h)
	}
	info, err := s.obs.GetInfo(ctx, string(h))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("look up blob %s: %w", h.Short(), err)
	}
	return int64(info.Size), true, nil
}

// Get returns a whole blob.
func (s *Store) Get(ctx context.Context, h wu.Hash) ([]byte, error) {
	if !h.Valid() {
		return nil, wu.Errorf(wu.CodeBadRequest, "%q is not a sha-256", h)
	}
	s.mu.Lock()
	b, ok := s.cache[h]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := s.obs.GetBytes(ctx, string(h))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, wu.Errorf(wu.CodeNotFound, "no blob %s", h.Short())
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", h.Short(), err)
	}
	if wu.HashOf(b) != h {
		return nil, fmt.Errorf("blob %s is corrupt in the store", h.Short())
	}
	s.remember(h, b)
	return b, nil
}

func (s *Store) remember(h wu.Hash, b []byte) {
	if len(b) > cacheBytes/4 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cache[h]; ok {
		return
	}
	s.cache[h] = b
	s.order = append(s.order, h)
	s.bytes += len(b)
	for s.bytes > cacheBytes {
		old := s.order[0]
		s.order = s.order[1:]
		s.bytes -= len(s.cache[old])
		delete(s.cache, old)
	}
}

// Chunk returns up to ChunkBytes of a blob from offset, and the blob's size.
func (s *Store) Chunk(ctx context.Context, h wu.Hash, offset int64) ([]byte, int64, error) {
	b, err := s.Get(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	if offset < 0 || offset > int64(len(b)) {
		return nil, 0, wu.Errorf(wu.CodeBadRequest, "offset %d outside blob %s of %d bytes", offset, h.Short(), len(b))
	}
	end := min(offset+ChunkBytes, int64(len(b)))
	return b[offset:end], int64(len(b)), nil
}

// Delete removes a blob.
func (s *Store) Delete(ctx context.Context, h wu.Hash) error {
	s.mu.Lock()
	if b, ok := s.cache[h]; ok {
		s.bytes -= len(b)
		delete(s.cache, h)
		for i, o := range s.order {
			if o == h {
				s.order = append(s.order[:i], s.order[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	if err := s.obs.Delete(ctx, string(h)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete blob %s: %w", h.Short(), err)
	}
	return nil
}

// Uploads assembles chunked uploads in files under a directory, and stores
// each one in the Store once it is whole and its hash checks out.
type Uploads struct {
	Store    *Store
	Dir      string
	MaxBytes int64 // largest blob accepted

	mu   sync.Mutex
	open map[string]*upload // by uploader and hash
}

type upload struct {
	f    *os.File
	size int64
	done int64
}

// Chunk takes the chunk at offset of the blob want of the given size from
// uploader. It returns how many bytes of the blob the project now holds (the
// whole size once stored): an uploader that lost track resumes from there.
func (u *Uploads) Chunk(ctx context.Context, uploader string, want wu.Hash, size, offset int64, data []byte) (int64, error) {
	if !want.Valid() {
		return 0, wu.Errorf(wu.CodeBadRequest, "%q is not a sha-256", want)
	}
	if size < 0 || size > u.MaxBytes {
		return 0, wu.Errorf(wu.CodeTooLarge, "blob of %d bytes is over the %d-byte limit", size, u.MaxBytes)
	}
	if n, ok, err := u.Store.Size(ctx, want); err != nil {
		return 0, err
	} else if ok {
		if n != size {
			return 0, wu.Errorf(wu.CodeBadRequest, "blob %s has %d bytes, not %d", want.Short(), n, size)
		}
		return size, nil
	}
	key := uploader + "/" + string(want)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.open == nil {
		u.open = map[string]*upload{}
	}
	up := u.open[key]
	if up == nil || up.size != size {
		if up != nil {
			u.drop(key, up)
		}
		if offset != 0 {
			return 0, nil // start again from the beginning
		}
		if err := os.MkdirAll(u.Dir, 0o700); err != nil {
			return 0, fmt.Errorf("upload directory: %w", err)
		}
		f, err := os.CreateTemp(u.Dir, "upload-*")
		if err != nil {
			return 0, fmt.Errorf("start upload of %s: %w", want.Short(), err)
		}
		up = &upload{f: f, size: size}
		u.open[key] = up
	}
	if offset != up.done {
		return up.done, nil
	}
	if up.done+int64(len(data)) > size {
		u.drop(key, up)
		return 0, wu.Errorf(wu.CodeBadRequest, "chunk runs past the blob's declared size of %d bytes", size)
	}
	if _, err := up.f.Write(data); err != nil {
		u.drop(key, up)
		return 0, fmt.Errorf("write upload of %s: %w", want.Short(), err)
	}
	up.done += int64(len(data))
	if up.done < size {
		return up.done, nil
	}
	defer u.drop(key, up)
	if _, err := up.f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("rewind upload of %s: %w", want.Short(), err)
	}
	if err := u.Store.PutVerified(ctx, want, up.f); err != nil {
		return 0, err
	}
	return size, nil
}

func (u *Uploads) drop(key string, up *upload) {
	up.f.Close()
	os.Remove(up.f.Name())
	delete(u.open, key)
}

// Close abandons every unfinished upload.
func (u *Uploads) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, up := range u.open {
		u.drop(k, up)
	}
}
