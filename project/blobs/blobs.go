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
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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
	// claims says which gateway puts a blob (see putOnce); nil when the
	// project has no claims bucket.
	claims   jetstream.KeyValue
	claimTTL time.Duration
	// replicated: its bucket has more than one replica, which may lag.
	replicated bool

	mu    sync.Mutex
	cache map[wu.Hash][]byte // recently read blobs, for chunked downloads
	order []wu.Hash
	bytes int
}

// cacheBytes bounds the memory kept for serving chunked downloads: many
// volunteers fetch the same app, chunk by chunk.
const cacheBytes = 64 << 20

// Open creates (or opens) the bucket, and the bucket of claims on putting
// its blobs, and returns its Store.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Store, error) {
	return open(ctx, js, bucket, replicas, claimTTL)
}

func open(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, ttl time.Duration) (*Store, error) {
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
	claims, err := openClaims(ctx, js, bucket, replicas, ttl)
	if err != nil {
		return nil, err
	}
	return &Store{obs: obs, claims: claims, claimTTL: ttl, replicated: replicas > 1, cache: map[wu.Hash][]byte{}}, nil
}

// Bind returns the Store of an existing bucket without changing its
// configuration, as the project's tools find it: opening it with their own
// settings would, on a cluster, change its replication.
func Bind(ctx context.Context, js jetstream.JetStream, bucket string) (*Store, error) {
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("the project has no blob store %s yet: start `momonga-project serve` first", bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("find blob store %s: %w", bucket, err)
	}
	s := &Store{obs: obs, cache: map[wu.Hash][]byte{}}
	st, err := obs.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("find blob store %s: %w", bucket, err)
	}
	s.replicated = st.Replicas() > 1
	claims, err := js.KeyValue(ctx, claimsBucket(bucket))
	switch {
	case err == nil:
		s.claims = claims
		if st, err := claims.Status(ctx); err == nil {
			s.claimTTL = st.TTL()
		}
		if s.claimTTL <= 0 {
			s.claimTTL = claimTTL
		}
	case !errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("find blob claims %s: %w", claimsBucket(bucket), err)
	}
	return s, nil
}

// Put stores b and returns its hash. Storing a blob that is there already
// does nothing.
func (s *Store) Put(ctx context.Context, b []byte) (wu.Hash, error) {
	h := wu.HashOf(b)
	err := s.putOnce(ctx, h, func(ctx context.Context) error {
		_, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: string(h)}, bytes.NewReader(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("put blob %s: %w", h.Short(), err)
	}
	return h, nil
}

// Size reports whether a blob is stored, and its size. On a replicated
// store a blob another server stored a moment ago is looked for again for
// a while before Size says it is not there (see missTries).
func (s *Store) Size(ctx context.Context, h wu.Hash) (n int64, ok bool, err error) {
	for try := 0; ; try++ {
		if n, ok, err = s.look(ctx, h); err != nil || ok || !s.again(ctx, try) {
			return n, ok, err
		}
	}
}

// missTries is how many times a replicated store is asked for a blob it
// says it does not hold. Reads are answered by any replica (the object
// store's direct gets), and one that lags may not yet hold a blob whose
// put the others acknowledged: a tool's upload, checked at once by a
// gateway on another server. The pauses between tries add up to 1.5 s.
const missTries = 5

// again reports, after a blob was not found at try, whether to look for it
// once more, having paused.
func (s *Store) again(ctx context.Context, try int) bool {
	if !s.replicated || try >= missTries-1 {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Duration(50<<try) * time.Millisecond):
		return true
	}
}

// look is Size with one look: for a putter, whom the claims guard.
func (s *Store) look(ctx context.Context, h wu.Hash) (int64, bool, error) {
	if !h.Valid() {
		return 0, false, errNotHash(h)
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
		return nil, errNotHash(h)
	}
	s.mu.Lock()
	b, ok := s.cache[h]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	var err error
	for try, misses := 0, 0; ; {
		b, err = s.obs.GetBytes(ctx, string(h))
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			if s.again(ctx, misses) {
				misses++
				continue
			}
			return nil, errNoBlob(h)
		}
		if err == nil && wu.HashOf(b) != h {
			err = jetstream.ErrDigestMismatch
		}
		// A blob is named by its hash, so every complete copy is the same;
		// but a second put of it replaces its chunks, and a read across
		// the change sees a mix. Puts are claimed (see putOnce), yet a
		// claim expires when its process is thought dead: read it again
		// once the put is done.
		if !errors.Is(err, jetstream.ErrDigestMismatch) || try == getTries-1 {
			break
		}
		try++
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("get blob %s: %w", h.Short(), ctx.Err())
		case <-time.After(time.Duration(try) * 50 * time.Millisecond):
		}
	}
	if errors.Is(err, jetstream.ErrDigestMismatch) {
		return nil, fmt.Errorf("blob %s is corrupt in the store", h.Short())
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", h.Short(), err)
	}
	s.remember(h, b)
	return b, nil
}

// getTries is how many times Get reads a blob whose content does not match
// its hash before it calls it corrupt.
const getTries = 5

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
	return chunk(b, h, offset)
}

// chunk is up to ChunkBytes of blob b from offset, and b's size.
func chunk(b []byte, h wu.Hash, offset int64) ([]byte, int64, error) {
	if offset < 0 || offset > int64(len(b)) {
		return nil, 0, wu.Errorf(wu.CodeBadRequest, "offset %d outside blob %s of %d bytes", offset, h.Short(), len(b))
	}
	end := min(offset+ChunkBytes, int64(len(b)))
	return b[offset:end], int64(len(b)), nil
}

// The answers a Store and a Mem give alike, so that what is tested on a Mem
// is what a volunteer is told.

func errNotHash(h wu.Hash) *wu.Error {
	return wu.Errorf(wu.CodeBadRequest, "%q is not a sha-256", h)
}

func errNoBlob(h wu.Hash) *wu.Error { return wu.Errorf(wu.CodeNotFound, "no blob %s", h.Short()) }

func errHashMismatch(got, want wu.Hash) *wu.Error {
	return wu.Errorf(wu.CodeBadRequest, "blob content hashes to %s, not %s", got.Short(), want.Short())
}

func errPastSize(size int64) *wu.Error {
	return wu.Errorf(wu.CodeBadRequest, "chunk runs past the blob's declared size of %d bytes", size)
}

// checkUpload checks what a chunk declares: the blob's hash, the uploader
// (a subject token: it names the staging subject) and the blob's size, of
// at most maxBytes.
func checkUpload(uploader string, want wu.Hash, size, maxBytes int64) error {
	if !want.Valid() {
		return errNotHash(want)
	}
	if uploader == "" || strings.ContainsAny(uploader, ".*> \t\r\n") {
		return wu.Errorf(wu.CodeBadRequest, "uploader %q is not a subject token", uploader)
	}
	if size < 0 || size > maxBytes {
		return wu.Errorf(wu.CodeTooLarge, "blob of %d bytes is over the %d-byte limit", size, maxBytes)
	}
	return nil
}

// storedAs answers a chunk of a blob already stored, with n bytes: the
// whole size, if the upload declared that size.
func storedAs(want wu.Hash, n, size int64) (int64, error) {
	if n != size {
		return 0, wu.Errorf(wu.CodeBadRequest, "blob %s has %d bytes, not %d", want.Short(), n, size)
	}
	return size, nil
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
	if s.claims != nil {
		s.freeClaim(ctx, h)
	}
	return nil
}
