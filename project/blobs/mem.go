package blobs

import (
	"context"
	"sync"

	wu "github.com/momonga-project/momonga/workunits"
)

// Mem is a blob store kept in memory, with the Store's answers (not found,
// bad offsets, sizes) and no JetStream: for the tests of what reads and
// writes blobs (the gateway, the lease holder's duties). Its Uploads stage
// chunked uploads as Uploads does. The zero value is empty and ready.
type Mem struct {
	mu     sync.Mutex
	blobs  map[wu.Hash][]byte
	staged map[string][]byte // by uploader and blob
}

// Put stores b and returns its hash.
func (m *Mem) Put(_ context.Context, b []byte) (wu.Hash, error) {
	h := wu.HashOf(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blobs == nil {
		m.blobs = make(map[wu.Hash][]byte)
	}
	m.blobs[h] = append([]byte(nil), b...)
	return h, nil
}

// Size reports whether a blob is stored, and its size.
func (m *Mem) Size(_ context.Context, h wu.Hash) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[h]
	return int64(len(b)), ok, nil
}

// Get returns a whole blob.
func (m *Mem) Get(_ context.Context, h wu.Hash) ([]byte, error) {
	if !h.Valid() {
		return nil, errNotHash(h)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[h]
	if !ok {
		return nil, errNoBlob(h)
	}
	return b, nil
}

// Chunk returns up to ChunkBytes of a blob from offset, and the blob's size.
func (m *Mem) Chunk(ctx context.Context, h wu.Hash, offset int64) ([]byte, int64, error) {
	b, err := m.Get(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	return chunk(b, h, offset)
}

// Delete removes a blob.
func (m *Mem) Delete(_ context.Context, h wu.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.blobs, h)
	return nil
}

// Len is how many blobs are stored.
func (m *Mem) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.blobs)
}

// MemUploads stages chunked uploads into a Mem, like Uploads into a Store.
type MemUploads struct {
	Store    *Mem
	MaxBytes int64
}

// Chunk takes the chunk at offset of the blob want of the given size from
// uploader and returns how many bytes of it the store holds, as
// Uploads.Chunk does.
func (u MemUploads) Chunk(ctx context.Context, uploader string, want wu.Hash, size, offset int64, data []byte) (int64, error) {
	if err := checkUpload(uploader, want, size, u.MaxBytes); err != nil {
		return 0, err
	}
	if n, ok, _ := u.Store.Size(ctx, want); ok {
		return storedAs(want, n, size)
	}
	m := u.Store
	key := uploader + "." + string(want)
	m.mu.Lock()
	if m.staged == nil {
		m.staged = make(map[string][]byte)
	}
	done := int64(len(m.staged[key]))
	if offset != done {
		m.mu.Unlock()
		return done, nil
	}
	if done+int64(len(data)) > size {
		delete(m.staged, key)
		m.mu.Unlock()
		return 0, errPastSize(size)
	}
	b := append(m.staged[key], data...)
	m.staged[key] = b
	m.mu.Unlock()
	if int64(len(b)) < size {
		return int64(len(b)), nil
	}
	m.mu.Lock()
	delete(m.staged, key)
	m.mu.Unlock()
	if got := wu.HashOf(b); got != want {
		return 0, errHashMismatch(got, want)
	}
	_, err := m.Put(ctx, b)
	return size, err
}
