// Package vpeer replicates a deterministic state machine over a totally
// ordered log: a virtual peer (DESIGN §5).
//
// Every member of a virtual peer runs the same StateMachine and applies the
// same log, so all members reach the same state. A request enters the log
// once (Log.Append); each member applies it and may send the reply to the
// requester, who keeps the first. Time enters the log too, as Tick records
// appended by the lease holder, so Apply never reads a clock.
//
// The log is an interface: MemLog keeps it in memory for unit tests, and the
// jetlog subpackage keeps it in a JetStream stream, whose Raft replication
// acts as the atomic multicast. A Member is one replica: it applies the log
// to its StateMachine, sends replies and, as lease holder, appends ticks.
//
// Snapshots: at snapshot points (every N records, or a record appended by
// MarkSnapshot) every member records the hash of its state, so members can
// be compared at a common sequence number, and the lease holder stores a
// zstd-compressed snapshot with a checksum in a SnapshotStore, then trims the
// log behind the oldest snapshot it keeps. A starting member restores the
// newest snapshot that is whole, falling back to older ones, and replays the
// rest.
//
// Membership: a Group runs one process's members. The group keeps Size slots
// filled; slots and the lease are keys in a Registry, renewed every
// heartbeat, and a slot nobody renews is taken by a process with spare
// capacity, whose new member restores and replays. More members are more
// processes over the same log, registry and store, on any machine.
//
// The vpeertest subpackage holds the tests every Log, SnapshotStore,
// Registry, Member and Group must pass. This package imports no NATS: only
// jetlog does.
package vpeer

import (
	"context"
	"errors"
	"time"

	"github.com/momonga-project/momonga/vpeer/fsm"
)

// Entry is what a StateMachine applies: one record of the log (package fsm,
// which pure packages import).
type Entry = fsm.Entry

// StateMachine is the replicated process (package fsm).
type StateMachine = fsm.StateMachine

// Emitter is a StateMachine whose entries have outputs besides their
// replies (package fsm).
type Emitter = fsm.Emitter

// Sizer is a StateMachine that tells the size of its snapshot (package
// fsm).
type Sizer = fsm.Sizer

// Record is a log record as appended and as read back.
type Record struct {
	Seq     uint64    // set by the log on read; ignored on append
	ID      string    // de-duplication id: a second append with the same ID is dropped
	ReplyTo string    // where the reply to this record goes; empty for none
	Tick    time.Time // non-zero for a Tick record
	Payload []byte
	// Batch, when it is not empty, makes the record carry several requests
	// instead of Payload and ReplyTo: members apply them one after the
	// other, in this order, each as an Entry of its own with the record's
	// Seq, and send each reply to its own ReplyTo. A gateway that groups
	// the requests arriving together so appends one record, and every
	// member reads, for many requests.
	Batch []Request
	// Snapshot marks a snapshot point asked for on demand (MarkSnapshot):
	// it is not applied, but every member records the hash of its state
	// there and the lease holder stores a snapshot. Payload is ignored.
	Snapshot bool
	// Term is the lease term a record appended on the group's behalf was
	// appended in (its ticks, and the records of the holder's duties:
	// Group.OnLease): the registry's revision of the lease when its holder
	// took it, so a later holder's terms are higher. It is 0 on every other
	// record. Members do not apply it; it lets an audit of the log see
	// whether an old holder still acted after its successor had begun
	// (LateAppends).
	Term uint64
	// Err is set on read when the stored record cannot be decoded. Seq is
	// still valid, so a reader can skip the record and stay in step with
	// every other reader; the other fields are unreliable.
	Err error
}

// Request is one request of a batched record (Record.Batch).
type Request struct {
	ReplyTo string // where its reply goes; empty for none
	Payload []byte
}

// Requests lists what r asks of the machine: its batch, or its payload
// and reply subject as one request.
func (r Record) Requests() []Request {
	if len(r.Batch) > 0 {
		return r.Batch
	}
	return []Request{{ReplyTo: r.ReplyTo, Payload: r.Payload}}
}

// Log is the totally ordered log of one virtual peer.
type Log interface {
	// Append adds a record and returns its sequence number. A record whose ID
	// was appended recently is not added again; Append then returns the
	// earlier record's sequence number and ErrDuplicate.
	Append(ctx context.Context, r Record) (uint64, error)
	// Read calls fn for every record from sequence from on, in order,
	// waiting for new ones, until ctx is done or fn returns an error.
	Read(ctx context.Context, from uint64, fn func(Record) error) error
	// LastSeq is the sequence number of the newest record (0 when empty).
	LastSeq(ctx context.Context) (uint64, error)
}

// Trimmer is a Log that can drop its oldest records, once a snapshot covers
// them.
type Trimmer interface {
	// Trim drops every record up to and including sequence number seq.
	// Reading from an earlier sequence number then starts at seq+1.
	Trim(ctx context.Context, seq uint64) error
}

// MarkSnapshot appends a snapshot point to l and returns its sequence
// number: every member hashes its state there and the lease holder stores
// a snapshot.
func MarkSnapshot(ctx context.Context, l Log) (uint64, error) {
	return l.Append(ctx, Record{Snapshot: true})
}

// ErrDuplicate is returned by Append for a record whose ID was already
// appended.
var ErrDuplicate = errors.New("vpeer: duplicate record")
