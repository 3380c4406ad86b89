// Package fsm is the contract between a virtual peer and the state machine
// it replicates (DESIGN §5): the entry a machine applies, the machine itself,
// and the outputs an entry produces besides its reply.
//
// It is the part of vpeer that pure packages may import: it reads no
// clock, starts nothing and imports nothing but io and time, so the
// scheduler and the accounting machine depend on it without depending on
// the members, logs and registries that run them.
package fsm

import (
	"io"
	"time"
)

// Entry is what a StateMachine applies: one record of the log.
type Entry struct {
	Seq uint64 // position in the log, from 1
	// Time is the latest time carried by a Tick at or before this entry, in
	// UTC; zero before the first Tick. It never goes back, even when a Tick
	// from a slower clock follows.
	Time    time.Time
	Tick    bool // a Tick entry carries no payload: it only advances Time
	Payload []byte
}

// StateMachine is the replicated process. Apply must be deterministic: the
// same entries in the same order give the same replies and the same state,
// on every member. Snapshot must be deterministic too (the same state writes
// the same bytes), because members compare hashes of their snapshots, and
// Restore must replace the whole state, or leave it as it was when it fails.
type StateMachine interface {
	Apply(e Entry) (reply []byte)
	Snapshot(w io.Writer) error
	Restore(r io.Reader) error
}

// An Emitter is a StateMachine whose entries can have effects outside it:
// a host whose connections must close, outputs waiting for a comparison,
// credit to forward to another virtual peer. Apply records them as typed
// values, the machine's own types, and Outputs returns those of the last
// Apply, in the order they happened; they are valid until the next Apply,
// which starts a new list. The member running the machine hands them to
// whoever subscribed (vpeer.GroupConfig.Outputs), so that the process around
// the machine acts on what happened without reading the log's bytes again
// or polling the state. Outputs are deterministic like replies: every member
// produces the same for the same entry.
type Emitter interface {
	StateMachine
	Outputs() []any
}

// A Sizer is a StateMachine that tells about how many bytes its Snapshot
// would write now, without writing it: a virtual peer spaces its snapshots
// by it (vpeer.MemberConfig.SnapshotSpacing). It must be cheap, and
// deterministic like the snapshot itself.
type Sizer interface {
	StateMachine
	SnapshotSize() int
}
