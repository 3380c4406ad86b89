package vpeer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrNotLeading is returned by a log from Group.OnLease for an append made
// while no member of this process may act on the group's lease.
var ErrNotLeading = errors.New("vpeer: this process does not hold the group's lease")

// OnLease returns l as the lease holder's duties append to it: every record
// appended carries the term of the lease this process holds (Record.Term;
// its ID, if any, names the term too), and an append is refused with
// ErrNotLeading while no member here may act on the lease, as when its
// holder has not renewed it for most of the lapse. Reading passes through
// unchanged. Members fence off a record whose term is older than one they
// have applied: one that reaches the log after a successor's, held up in a
// link that broke and healed, changes nothing.
func (g *Group) OnLease(l Log) Log { return leaseLog{Log: l, g: g} }

type leaseLog struct {
	Log
	g *Group
}

func (l leaseLog) Append(ctx context.Context, r Record) (uint64, error) {
	term, ok := l.g.Term()
	if !ok {
		return 0, fmt.Errorf("append %q for group %s: %w", r.ID, l.g.cfg.Name, ErrNotLeading)
	}
	r.Term = term
	if r.ID != "" {
		// A record of this term must not be taken for a duplicate of the
		// same record by a past holder, which members fence off.
		r.ID = "term-" + strconv.FormatUint(term, 10) + "." + r.ID
	}
	l.g.acted(term, time.Now())
	return l.Log.Append(ctx, r)
}

// LateAppend is a record appended on a lease's behalf after a record of a
// newer term: an old holder acting after its successor had begun.
type LateAppend struct {
	Record Record
	// Newer is the highest term seen before the record, and First the
	// sequence number of that term's first record.
	Newer uint64
	First uint64
}

// LateAppends audits records, read from a log in order: it returns every
// record whose term is lower than one already seen. Two holders of a lease
// never overlapping means none.
func LateAppends(records []Record) []LateAppend {
	var late []LateAppend
	var newest, first uint64
	for _, r := range records {
		switch {
		case r.Term == 0:
		case r.Term > newest:
			newest, first = r.Term, r.Seq
		case r.Term < newest:
			late = append(late, LateAppend{Record: r, Newer: newest, First: first})
		}
	}
	return late
}
