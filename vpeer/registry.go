package vpeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
)

// Registry is a small key-value store with compare-and-set, where the
// members of groups hold their slots and the lease (the MEMBERS bucket of
// DESIGN §1). jetlog keeps it in a JetStream KV bucket; MemRegistry in
// memory. It needs no expiry of its own: a key that nobody renews is judged
// lapsed by whoever watches it, on its own clock (Group).
type Registry interface {
	// Get returns the value of key and its revision, or ErrNotFound.
	Get(ctx context.Context, key string) (value []byte, rev uint64, err error)
	// Create sets key to value if it does not exist, or returns ErrConflict.
	Create(ctx context.Context, key string, value []byte) (rev uint64, err error)
	// Update sets key to value if its revision is still rev, or returns
	// ErrConflict.
	Update(ctx context.Context, key string, value []byte, rev uint64) (newRev uint64, err error)
}

// Errors of a Registry.
var (
	ErrNotFound = errors.New("vpeer: no such key")
	ErrConflict = errors.New("vpeer: key changed meanwhile")
)

// MemRegistry is a Registry in memory, for tests. The zero value is an
// empty registry ready to use; it is safe for concurrent use.
type MemRegistry struct {
	mu   sync.Mutex
	rev  uint64
	keys map[string]memEntry
}

type memEntry struct {
	value []byte
	rev   uint64
}

var _ Registry = (*MemRegistry)(nil)

// Get implements Registry.
func (r *MemRegistry) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.keys[key]
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return bytes.Clone(e.value), e.rev, nil
}

// Create implements Registry.
func (r *MemRegistry) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return r.set(ctx, key, value, 0)
}

// Update implements Registry.
func (r *MemRegistry) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return r.set(ctx, key, value, rev)
}

func (r *MemRegistry) set(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[key].rev != rev {
		return 0, fmt.Errorf("%s: %w", key, ErrConflict)
	}
	if r.keys == nil {
		r.keys = make(map[string]memEntry)
	}
	r.rev++
	r.keys[key] = memEntry{bytes.Clone(value), r.rev}
	return r.rev, nil
}
