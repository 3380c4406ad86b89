package vpeer

import (
	"bytes"
	"context"
	"slices"
	"sync"
)

// MemLog is a Log kept in memory, for unit tests and single-process demos.
// It de-duplicates record IDs for its whole life, trimmed records included
// (a JetStream stream only within its duplicate window). The zero value is
// an empty log ready to use; it is safe for concurrent use.
type MemLog struct {
	mu      sync.Mutex
	records []Record          // records[i] has Seq trimmed+i+1; never modified once appended
	trimmed uint64            // records up to this sequence number were dropped
	ids     map[string]uint64 // record ID → sequence
	grown   chan struct{}     // closed and replaced by every append
}

var _ Trimmer = (*MemLog)(nil)

// NewMemLog returns an empty MemLog.
func NewMemLog() *MemLog { return &MemLog{} }

// Append adds r and returns its sequence number, or the earlier record's
// sequence number and ErrDuplicate when r.ID was appended before. The
// payload is copied.
func (l *MemLog) Append(ctx context.Context, r Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.ID != "" {
		if seq, ok := l.ids[r.ID]; ok {
			return seq, ErrDuplicate
		}
		if l.ids == nil {
			l.ids = make(map[string]uint64)
		}
	}
	seq := l.trimmed + uint64(len(l.records)) + 1
	r.Seq = seq
	r.Payload = bytes.Clone(r.Payload)
	r.Batch = cloneBatch(r.Batch)
	r.Err = nil
	l.records = append(l.records, r)
	if r.ID != "" {
		l.ids[r.ID] = seq
	}
	if l.grown != nil {
		close(l.grown)
		l.grown = nil
	}
	return seq, nil
}

// Read calls fn for every record from sequence from on (1 when from is 0;
// the oldest one kept when the log was trimmed past from), in order, waiting
// for new ones, until ctx is done (it then returns ctx.Err()) or fn returns
// an error (returned as is). Each call gets its own copy of the payloads.
func (l *MemLog) Read(ctx context.Context, from uint64, fn func(Record) error) error {
	next := max(from, 1)
	for {
		l.mu.Lock()
		next = max(next, l.trimmed+1)
		var batch []Record
		if i := next - l.trimmed - 1; i < uint64(len(l.records)) {
			// Safe to range over outside the lock: appends only write past
			// the current length, and Trim makes a new slice.
			batch = l.records[i:]
		}
		if l.grown == nil {
			l.grown = make(chan struct{})
		}
		grown := l.grown
		l.mu.Unlock()

		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-grown:
				continue
			}
		}
		for _, r := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			r.Payload = bytes.Clone(r.Payload)
			r.Batch = cloneBatch(r.Batch)
			if err := fn(r); err != nil {
				return err
			}
			next++
		}
	}
}

// LastSeq returns the sequence number of the newest record, 0 when empty.
func (l *MemLog) LastSeq(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.trimmed + uint64(len(l.records)), nil
}

// Trim drops the records up to and including seq.
func (l *MemLog) Trim(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.trimmed {
		return nil
	}
	n := min(seq-l.trimmed, uint64(len(l.records)))
	l.records = slices.Clone(l.records[n:])
	l.trimmed += n
	return nil
}

func cloneBatch(b []Request) []Request {
	if len(b) == 0 {
		return nil
	}
	c := make([]Request, len(b))
	for i, q := range b {
		c[i] = Request{ReplyTo: q.ReplyTo, Payload: bytes.Clone(q.Payload)}
	}
	return c
}
