package jetlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
)

// Registry is a vpeer.Registry in a JetStream KV bucket (MEMBERS in
// DESIGN §1). Revisions are the bucket's, so compare-and-set is
// JetStream's expected-last-subject-sequence.
type Registry struct {
	kv     jetstream.KeyValue
	bucket string
}

var _ vpeer.Registry = (*Registry)(nil)

// OpenRegistry creates the KV bucket, or updates it to replicas, and
// returns the registry kept in it.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Registry, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "virtual peer membership and leases",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("jetlog: open registry %s: %w", bucket, err)
	}
	return &Registry{kv: kv, bucket: bucket}, nil
}

// BindRegistry returns the registry kept in an existing bucket.
func BindRegistry(ctx context.Context, js jetstream.JetStream, bucket string) (*Registry, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("jetlog: find registry %s: %w", bucket, err)
	}
	return &Registry{kv: kv, bucket: bucket}, nil
}

// Get implements vpeer.Registry.
func (r *Registry) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("%s in %s: %w", key, r.bucket, vpeer.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jetlog: get %s in %s: %w", key, r.bucket, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create implements vpeer.Registry.
func (r *Registry) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := r.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%s in %s: %w", key, r.bucket, vpeer.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("jetlog: create %s in %s: %w", key, r.bucket, err)
	}
	return rev, nil
}

// Update implements vpeer.Registry.
func (r *Registry) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	rev, err := r.kv.Update(ctx, key, value, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%s in %s: %w", key, r.bucket, vpeer.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("jetlog: update %s in %s: %w", key, r.bucket, err)
	}
	return rev, nil
}
