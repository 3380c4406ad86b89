package blobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
// blob in a KV bucket of claims, and checks again that the blob is not
// stored; another putter of the same blob waits until it is. A claim is
// renewed while its put runs and kept, once the blob is stored, until it
// expires with the bucket's TTL: a gateway that looked for the blob just
// before it was stored, or asked a replica that lags, cannot then claim and
// put it again. A claim is deleted when its put fails or its blob is
// deleted, and the claim of a process that dies expires: a waiter then
// takes over.

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

// heldByAnother reports whether err says that a claim's key was written
// by someone else: a Create that found it, or a revision that no longer
// matches (what Create returns, on a replicated bucket, when it loses a race
// for a key that was deleted).
func heldByAnother(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// storedClaim is the value of a claim whose blob is stored: Delete frees
// such a claim, and only such.
var storedClaim = []byte("stored")

// newToken names one put's claim, so that a gateway whose write of its
// claim timed out yet was applied can tell the claim is its own.
func newToken() []byte {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails
	return []byte(hex.EncodeToString(b))
}

// owned reads the claim on h and returns its revision when its value is
// token, that is, when a write of this put's whose answer was lost was
// applied.
func (s *Store) owned(ctx context.Context, h wu.Hash, token []byte) (uint64, bool) {
	e, err := s.claims.Get(ctx, string(h))
	if err != nil || !bytes.Equal(e.Value(), token) {
		return 0, false
	}
	return e.Revision(), true
}

// putOnce runs put unless the blob h is stored, once the claim on putting
// it is this Store's. Without a claims bucket (a project started before
// there was one) it only checks that the blob is not stored.
func (s *Store) putOnce(ctx context.Context, h wu.Hash, put func(context.Context) error) error {
	token := newToken()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		if _, ok, err := s.look(ctx, h); err != nil || ok {
			return err
		}
		if s.claims == nil {
			return put(ctx)
		}
		rev, err := s.claims.Create(ctx, string(h), token)
		if err != nil {
			// A Create tried before, or this one, may have been applied
			// though its answer was lost.
			if r, ok := s.owned(ctx, h, token); ok {
				rev, err = r, nil
			}
		}
		if err == nil {
			return s.putClaimed(ctx, h, token, rev, put)
		}
		if !heldByAnother(err) {
			return fmt.Errorf("claim the put of blob %s: %w", h.Short(), err)
		}
		select { // another gateway puts it
		case <-ctx.Done():
			return fmt.Errorf("wait for another gateway to put blob %s: %w", h.Short(), ctx.Err())
		case <-time.After(wait):
		}
	}
}

// errClaimLost cancels a put whose claim may be another gateway's by now.
var errClaimLost = errors.New("the claim on putting the blob was lost")

// putClaimed runs put, unless the blob was stored between the caller's
// look and its claim, while renewing the claim (value token, revision rev).
// The claim is kept, marked stored, when the blob is stored (see above)
// and deleted when the put fails. A claim that is found taken, gone, or
// about to expire unrenewed cancels the put.
func (s *Store) putClaimed(ctx context.Context, h wu.Hash, token []byte, rev uint64, put func(context.Context) error) error {
	if _, ok, err := s.look(ctx, h); err != nil || ok {
		s.release(ctx, h, rev, err == nil)
		return err
	}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var lost bool
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		last := time.Now()
		next := s.claimTTL / 3
		for {
			select {
			case <-pctx.Done():
				return
			case <-time.After(next):
			}
			r, err := s.claims.Update(pctx, string(h), token, rev)
			if err != nil && heldByAnother(err) {
				// A renewal that timed out may have been applied.
				if o, ok := s.owned(pctx, h, token); ok {
					r, err = o, nil
				}
			}
			switch {
			case err == nil:
				rev, last, next = r, time.Now(), s.claimTTL/3
			case pctx.Err() != nil:
				return
			case heldByAnother(err) || errors.Is(err, jetstream.ErrKeyNotFound) || time.Since(last) > s.claimTTL*5/6:
				lost = true
				cancel(fmt.Errorf("%w: %w", errClaimLost, err))
				return
			default: // a time-out, an election: try again soon
				next = s.claimTTL / 12
			}
		}
	}()
	err := put(pctx)
	if cause := context.Cause(pctx); err != nil && errors.Is(cause, errClaimLost) {
		err = cause
	}
	cancel(nil)
	<-renewed
	if !lost {
		s.release(ctx, h, rev, err == nil)
	}
	return err
}

// release ends this Store's claim of revision rev on putting h: marked
// stored, to expire, when the blob is stored; else deleted, so that a
// waiter takes over. A claim that changed meanwhile is not this Store's
// any more, and is left alone.
func (s *Store) release(ctx context.Context, h wu.Hash, rev uint64, stored bool) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if stored {
		_, _ = s.claims.Update(rctx, string(h), storedClaim, rev) // else it expires
		return
	}
	_ = s.claims.Delete(rctx, string(h), jetstream.LastRevision(rev)) // else it expires
}

// freeClaim deletes the claim on h if it says its blob is stored (the
// blob was just deleted), so that the blob may be put again at once; a
// claim of a put under way is left alone.
func (s *Store) freeClaim(ctx context.Context, h wu.Hash) {
	e, err := s.claims.Get(ctx, string(h))
	if err != nil || !bytes.Equal(e.Value(), storedClaim) {
		return
	}
	_ = s.claims.Delete(ctx, string(h), jetstream.LastRevision(e.Revision()))
}
