package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// Batching groups the requests that arrive together into one record of the
// scheduler's log (vpeer.Record.Batch): one append, one record for every
// member to read, for many requests, each still applied on its own and
// answered at its own inbox. A request goes out at once while fewer than
// InFlight appends are in flight, so an idle log costs it nothing; while
// they are, it waits for the next of them to finish, for Wait at most, or
// until Max requests or Bytes of them are waiting.
type Batching struct {
	Max      int           // requests in one record; default 64, 1 for none
	Bytes    int           // bytes of the requests in one record; default 256 KiB
	Wait     time.Duration // longest a request waits for others; default 2 ms
	InFlight int           // appends in flight before requests wait; default 1
}

func (b Batching) withDefaults() Batching {
	if b.Max <= 0 {
		b.Max = 64
	}
	if b.Bytes <= 0 {
		b.Bytes = 256 << 10
	}
	if b.Wait <= 0 {
		b.Wait = 2 * time.Millisecond
	}
	if b.InFlight <= 0 {
		b.InFlight = 1
	}
	return b
}

// appendTimeout bounds one append of a batch, whose requesters may have
// stopped waiting: the record may still be stored, and then answered.
const appendTimeout = 30 * time.Second

// batcher groups requests into records and appends them (Batching).
type batcher struct {
	log Log
	cfg Batching
	id  string // names this gateway's batched records, for the log's de-duplication

	mu       sync.Mutex
	room     sync.Cond // signalled as queued falls
	open     *group    // the requests waiting to go out together
	inflight int
	queued   int    // requests in the open group and in appends in flight
	records  uint64 // batched records made
	wg       sync.WaitGroup
}

// group is the requests of one record, and how its append went.
type group struct {
	recs   []vpeer.Record
	failed []func(error) // told if the append fails, one per request that asked
	bytes  int
	timer  *time.Timer
	done   chan struct{} // closed when the append has returned
	err    error
}

// maxQueued bounds the requests a batcher holds, as a multiple of what the
// appends in flight and the open group can carry: past it, appendAsync
// waits, and the subscription's buffer takes the rest.
const maxQueued = 4

func newBatcher(log Log, cfg Batching) *batcher {
	var id [6]byte
	_, _ = rand.Read(id[:])
	b := &batcher{log: log, cfg: cfg.withDefaults(), id: "gw-" + hex.EncodeToString(id[:])}
	b.room.L = &b.mu
	return b
}

// append puts rec in the log, alone or with others, and returns when that
// record is stored or could not be. rec is a request: a payload and a reply
// subject, and an ID kept when it goes alone.
func (b *batcher) append(ctx context.Context, rec vpeer.Record) error {
	g := b.add(rec, nil)
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appendAsync puts rec in the log as append does, without waiting for it:
// failed, if not nil, is called if the record could not be stored. It
// waits only while the batcher holds as many requests as it may.
func (b *batcher) appendAsync(rec vpeer.Record, failed func(error)) {
	b.add(rec, failed)
}

// add puts rec in the open group, and sends the group if it is time.
func (b *batcher) add(rec vpeer.Record, failed func(error)) *group {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.queued >= maxQueued*b.cfg.Max*(b.cfg.InFlight+1) {
		b.room.Wait()
	}
	if b.open != nil && b.open.bytes+len(rec.Payload) > b.cfg.Bytes {
		b.flushLocked()
	}
	g := b.open
	if g == nil {
		g = &group{done: make(chan struct{})}
		b.open = g
		// Counted from now, not from its append: Wait waits for a group
		// whose requesters are gone.
		b.wg.Add(1)
	}
	g.recs = append(g.recs, rec)
	if failed != nil {
		g.failed = append(g.failed, failed)
	}
	g.bytes += len(rec.Payload)
	b.queued++
	switch {
	case b.inflight < b.cfg.InFlight || len(g.recs) >= b.cfg.Max || g.bytes >= b.cfg.Bytes:
		b.flushLocked()
	case len(g.recs) == 1:
		g.timer = time.AfterFunc(b.cfg.Wait, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.open == g {
				b.flushLocked()
			}
		})
	}
	return g
}

// flushLocked appends the open group as one record, in a goroutine of its
// own; when that append returns, the group that gathered meanwhile goes.
func (b *batcher) flushLocked() {
	g := b.open
	b.open = nil
	if g.timer != nil {
		g.timer.Stop()
	}
	rec := g.recs[0]
	if len(g.recs) > 1 {
		b.records++
		rec = vpeer.Record{ID: b.id + "." + strconv.FormatUint(b.records, 10), Batch: make([]vpeer.Request, len(g.recs))}
		for i, r := range g.recs {
			rec.Batch[i] = vpeer.Request{ReplyTo: r.ReplyTo, Payload: r.Payload}
		}
	}
	b.inflight++
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
		_, err := b.log.Append(ctx, rec)
		cancel()
		if errors.Is(err, vpeer.ErrDuplicate) {
			// This very record was stored before: by an earlier try of
			// the publish.
			err = nil
		}
		g.err = err
		close(g.done)
		if err != nil {
			for _, f := range g.failed {
				f(err)
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.inflight--
		b.queued -= len(g.recs)
		b.room.Broadcast()
		if b.open != nil && b.inflight < b.cfg.InFlight {
			b.flushLocked()
		}
	}()
}

// wait waits for the appends in flight, and for the group still open.
func (b *batcher) wait() { b.wg.Wait() }
