package sched

import wu "github.com/momonga-project/momonga/workunits"

// Outputs of Apply (vpeer/fsm.Emitter): what an entry did that the process
// around the scheduler acts on, once for the group (project/duties) or in
// every process (closing a revoked host's connections). They are values of
// the types below, in the order they happened, and like replies they are
// the same on every member. The state still holds everything they tell of
// (the outbox, the comparisons pending, the garbage list), so a process
// that missed them, or a lease holder that starts late, finds the work in
// the state: an output is a prompt to act now, not the only record.
type (
	// HostRevoked: the host's credentials were withdrawn; its
	// connections must close.
	HostRevoked struct{ Host string }
	// CompareNeeded: a unit waits for the validator to compare outputs
	// that are not byte for byte equal (PendingComparisons).
	CompareNeeded struct{ Unit string }
	// CreditGranted: a grant joined the outbox for the accounting peer
	// (Outbox).
	CreditGranted struct{ Output uint64 }
	// CheckpointsUnneeded: checkpoint blobs no task needs any more joined
	// the garbage list (Garbage).
	CheckpointsUnneeded struct{ Blobs []wu.Hash }
	// WorkWaiting: tasks were queued and these hosts, which wait for
	// work, are to be told (idle.go).
	WorkWaiting struct{ Hosts []string }
)

// Outputs returns the outputs of the last Apply; the next Apply reuses the
// list.
func (m *Machine) Outputs() []any { return m.outs }

func (m *Machine) emit(o any) { m.outs = append(m.outs, o) }
