package blobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	wu "github.com/momonga-project/momonga/workunits"
)

// A blob is put by one gateway at a time. A second put of a blob replaces
// its chunks and deletes the old ones, so a reader between the two sees a
// mix, or nothing; and two hosts that computed one output upload the same
// blob, often at the same moment. So a putter first creates the key of the
// blob in a KV bucket of claims; another putter of the same blob waits
// until it is stored. A claim is renewed while its put runs and deleted
// after it; the claim of a process that dies expires with the bucket's TTL,
// and a waiter takes over.

// claimsBucket is the KV bucket of the claims on a bucket of blobs.
func claimsBucket(bucket string) string { return bucket + "_PUTS" }

// claimTTL is how long a claim outlives its last renewal.
const claimTTL = 30 * time.Second

// openClaims creates (or opens) the claims bucket of a blob bucket.
func openClaims(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      claimsBucket(bucket),
		Description: "momonga: which gateway is putting a blob",
		TTL:         ttl,
		Storage:     jetstream.MemoryStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open blob claims %s: %w", claimsBucket(bucket), err)
	}
	return kv, nil
}

// putOnce runs put unless the blob h is stored, once the claim on putting
// it is this Store's. Without a claims bucket (a project started before
// there was one) it only checks that the blob is not stored.
func (s *Store) putOnce(ctx context.Context, h wu.Hash, put func(context.Context) error) error {
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		if _, ok, err := s.Size(ctx, h); err != nil || ok {
			return err
		}
		if s.claims == nil {
			return put(ctx)
		}
		rev, err := s.claims.Create(ctx, string(h), nil)
		if err == nil {
			return s.putClaimed(ctx, h, rev, put)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("claim the put of blob %s: %w", h.Short(), err)
		}
		select { // another gateway puts it
		case <-ctx.Done():
			return fmt.Errorf("wait for another gateway to put blob %s: %w", h.Short(), ctx.Err())
		case <-time.After(wait):
		}
	}
}

// putClaimed runs put while renewing the claim of revision rev, and then
// deletes the claim. A claim that cannot be renewed may be another
// gateway's by now: the put is cancelled, and fails.
func (s *Store) putClaimed(ctx context.Context, h wu.Hash, rev uint64, put func(context.Context) error) error {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(s.claimTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			var err error
			if rev, err = s.claims.Update(pctx, string(h), nil, rev); err != nil && pctx.Err() == nil {
				cancel(fmt.Errorf("the claim on putting blob %s was lost: %w", h.Short(), err))
				return
			}
		}
	}()
	err := put(pctx)
	if cause := context.Cause(pctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	cancel(nil)
	<-renewed
	// Deleted whether the put worked or not: a waiter then finds the blob,
	// or takes the claim and puts it itself.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer dcancel()
	_ = s.claims.Delete(dctx, string(h), jetstream.LastRevision(rev)) // else it expires
	return err
}
