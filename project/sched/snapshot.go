package sched

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/internal/snapcodec"
	wu "github.com/momonga-project/momonga/workunits"
)

// The snapshot is a compact binary encoding of the state, because a
// replacement member restores it before it can serve, and JSON took seconds
// for 10^5 work units. It leans on how the state is built: every unit is
// listed by exactly one batch, every task by exactly one unit and named after
// it, batch names are parallel to the batch's units. So units are written
// inside their batch and tasks inside their unit, in list order (which is
// deterministic, as the snapshot must be), and the ids, back-references and
// sets that follow from the nesting are not written at all. Strings drawn
// from a small set (app names, hosts, states) are written once and then
// referred to by number, which also makes the restored state share them.
//
//	magic "msched", version uvarint
//	now, next unit
//	tables:    the tables that grow with hosts and people, not with work
//	           (apps, hosts, users, teams, signatures, pending comparisons,
//	           the outbox of outputs for the accounting peer, what each
//	           app's units were measured to need):
//	           length, then JSON, so that a field added to them needs nothing here
//	batches:   count, then sorted by name: name, app, pending, valid, errored,
//	           cancelled, units (count, then each unit with its tasks), names
//	sessions:  count, then sorted by host: last, last used, replies sorted by seq
//	unsent, retry: count, then task numbers (tasks numbered in the order written)
//	shares:    count, then sorted by key: key, unit
//
// Integers are varints, floats IEEE bits, times seconds and nanoseconds.
// The version goes up when the layout changes; Restore refuses a version it
// does not know. Version 4 added what capability-aware scheduling, shared
// results and cancelling keep (a batch's cancelled units, a unit's sharing,
// a task's estimates, the shares); versions 3 (the outbox) and 2 are still
// read.
const (
	snapshotMagic   = "msched"
	snapshotVersion = 4
	// outboxVersion is the layout before version 4.
	outboxVersion = 3
	// legacyCreditVersion is the layout before the accounting peer: the
	// same, but with credit kept in the host, user and team tables.
	// Restore reads it and carries that credit over (openingBalances).
	legacyCreditVersion = 2
)

// tables is the snapshot's JSON section: everything whose size follows the
// number of hosts and people rather than the amount of work.
type tables struct {
	Apps     map[string]wu.App  `json:"apps"`
	Hosts    map[string]*host   `json:"hosts"`
	Users    map[string]*user   `json:"users"`
	Teams    map[string]*team   `json:"teams"`
	NextUser uint64             `json:"next_user,omitempty"`
	NextTeam uint64             `json:"next_team,omitempty"`
	NextHost uint64             `json:"next_host,omitempty"`
	AppSigs  map[wu.Hash]string `json:"app_sigs"`
	CodeSigs map[string]string  `json:"code_sigs,omitempty"`
	Compare  map[string]bool    `json:"compare"`
	Garbage  []wu.Hash          `json:"garbage,omitempty"`

	Outbox     []accounting.Grant `json:"outbox,omitempty"`
	NextOutput uint64             `json:"next_output,omitempty"`

	AppFPOps map[string]float64   `json:"app_fpops,omitempty"`
	Servers  []string             `json:"servers,omitempty"`
	HostNums uint64               `json:"host_nums,omitempty"`
	Progress map[string]*progress `json:"progress,omitempty"`
	Counters counters             `json:"counters,omitzero"`
}

// Snapshot writes the whole state.
func (m *Machine) Snapshot(w io.Writer) error {
	return m.snapshotVersion(w, snapshotVersion)
}

// snapshotVersion writes the state in the layout of version v: the
// current one, or for the tests that old snapshots still restore, an
// older one (without what it did not hold).
func (m *Machine) snapshotVersion(w io.Writer, v uint64) error {
	// About 60 bytes a task; growing the buffer would copy it several times.
	e := &encoder{Encoder: snapcodec.Encoder{B: make([]byte, 0, 4096+64*len(m.st.Tasks))}, syms: map[string]uint64{}, v: v}
	if err := e.state(m.st); err != nil {
		return fmt.Errorf("scheduler snapshot: %w", err)
	}
	if _, err := w.Write(e.B); err != nil {
		return fmt.Errorf("scheduler snapshot: %w", err)
	}
	return nil
}

// Restore replaces the state with a snapshot's; on error the state is left
// as it was.
func (m *Machine) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("scheduler restore: %w", err)
	}
	d := &decoder{Decoder: snapcodec.Decoder{B: b}}
	st := d.state()
	d.End()
	if d.Err != nil {
		return fmt.Errorf("scheduler restore: %w", d.Err)
	}
	m.st = st
	m.reindex()
	return nil
}

type encoder struct {
	snapcodec.Encoder
	v    uint64 // the layout's version
	syms map[string]uint64
	// Tasks numbered as written, for unsent and retry.
	taskNum  map[*task]uint64
	tasks    int // tasks written
	assigned int // tasks written that are in state.Assigned
}

func (e *encoder) checkpoint(c *wu.CheckpointRef) {
	if c == nil {
		e.Uint(0)
		return
	}
	e.Uint(1)
	e.Str(string(c.Hash))
	e.Int(c.Size)
	e.Uint(c.Seq)
	e.Str(string(c.Base))
	e.Int(c.BaseSize)
	e.Float(c.Progress)
	e.Float(c.CPUSeconds)
}

func (e *encoder) bool(v bool) {
	if v {
		e.Uint(1)
		return
	}
	e.Uint(0)
}

// sym writes a string from a small set: its number if it was written
// before, else the next number and the string.
func (e *encoder) sym(s string) {
	if n, ok := e.syms[s]; ok {
		e.Uint(n)
		return
	}
	n := uint64(len(e.syms))
	e.syms[s] = n
	e.Uint(n)
	e.Str(s)
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.Uint(0)
		return
	}
	e.Uint(uint64(t.Nanosecond()) + 1)
	e.Int(t.Unix())
}

func (e *encoder) state(st *state) error {
	e.B = append(e.B, snapshotMagic...)
	e.Uint(e.v)
	e.time(st.Now)
	e.Uint(st.NextUnit)
	// Sizes first, so that Restore makes its maps once.
	e.Uint(uint64(len(st.Units)))
	e.Uint(uint64(len(st.Tasks)))
	e.Uint(uint64(len(st.Assigned)))

	small, err := json.Marshal(tables{Apps: st.Apps, Hosts: st.Hosts, Users: st.Users, Teams: st.Teams,
		NextUser: st.NextUser, NextTeam: st.NextTeam, NextHost: st.NextHost, AppSigs: st.AppSigs, CodeSigs: st.CodeSigs, Compare: st.Compare, Garbage: st.Garbage,
		Outbox: st.Outbox, NextOutput: st.NextOutput, AppFPOps: st.AppFPOps, Servers: st.Servers, HostNums: st.HostNums, Progress: st.Progress, Counters: st.Counters})
	if err != nil {
		return err
	}
	e.Uint(uint64(len(small)))
	e.B = append(e.B, small...)

	e.taskNum = make(map[*task]uint64, len(st.Tasks))
	units := 0
	e.Uint(uint64(len(st.Batches)))
	for _, name := range sortedKeys(st.Batches) {
		b := st.Batches[name]
		e.Str(name)
		e.Str(b.Name)
		e.sym(b.App)
		e.Int(int64(b.Pending))
		e.Int(int64(b.Valid))
		e.Int(int64(b.Errored))
		if e.v >= 4 {
			e.Int(int64(b.Cancelled))
		}
		if len(b.Names) != len(b.Units) {
			return fmt.Errorf("batch %q has %d names for %d units", name, len(b.Names), len(b.Units))
		}
		e.Uint(uint64(len(b.Units)))
		for i, id := range b.Units {
			u := st.Units[id]
			if u == nil || u.ID != id || u.Batch != name || u.Name != b.Names[i] {
				return fmt.Errorf("batch %q lists unit %q as %q, which is not its own", name, id, b.Names[i])
			}
			if err := e.unit(st, u); err != nil {
				return err
			}
		}
		units += len(b.Units)
	}
	// As many tasks written as numbered as there are means each was written
	// exactly once. Units are then written once too: their tasks are named
	// after them.
	if units != len(st.Units) || e.tasks != len(st.Tasks) || len(e.taskNum) != len(st.Tasks) {
		return fmt.Errorf("batches list %d of %d units and %d (%d distinct) of %d tasks", units, len(st.Units), e.tasks, len(e.taskNum), len(st.Tasks))
	}
	if e.assigned != len(st.Assigned) {
		return fmt.Errorf("%d assigned tasks do not exist", len(st.Assigned)-e.assigned)
	}

	e.Uint(uint64(len(st.Sessions)))
	for _, id := range sortedKeys(st.Sessions) {
		s := st.Sessions[id]
		e.Str(id)
		e.Uint(s.Last)
		e.time(s.LastUsed)
		seqs := make([]uint64, 0, len(s.Replies))
		for q := range s.Replies {
			seqs = append(seqs, q)
		}
		slices.Sort(seqs)
		e.Uint(uint64(len(seqs)))
		for _, q := range seqs {
			e.Uint(q)
			e.Uint(uint64(len(s.Replies[q])))
			e.B = append(e.B, s.Replies[q]...)
		}
	}

	for _, q := range [][]string{st.Unsent, st.Retry} {
		e.Uint(uint64(len(q)))
		for _, id := range q {
			t := st.Tasks[id]
			n, ok := e.taskNum[t]
			if !ok {
				return fmt.Errorf("queued task %q does not exist", id)
			}
			e.Uint(n)
		}
	}

	if e.v < 4 {
		return nil
	}
	e.Uint(uint64(len(st.Shares)))
	keys := make([]string, 0, len(st.Shares))
	for k := range st.Shares {
		keys = append(keys, string(k))
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.Str(k)
		e.Str(st.Shares[wu.Hash(k)])
	}
	return nil
}

func (e *encoder) unit(st *state, u *unit) error {
	e.Str(u.ID)
	e.Str(u.Name)
	e.sym(u.App)
	e.sym(string(u.AppHash))
	e.Int(u.AppSize)
	e.Uint(uint64(len(u.Args)))
	for _, a := range u.Args {
		e.Str(a)
	}
	e.Str(string(u.Stdin))
	e.Float(u.FPOps)
	e.Int(u.Limits.MemoryBytes)
	e.Int(u.Limits.OutputBytes)
	e.Float(u.Limits.MaxSeconds)
	e.Float(u.Deadline)
	e.Int(int64(u.Replication))
	e.Int(int64(u.Quorum))
	e.Int(int64(u.MaxTasks))
	e.sym(string(u.State))
	e.Str(string(u.Canonical))
	e.Int(u.OutputSize)
	e.sym(u.Reason)
	e.bool(u.Adaptive)
	e.Int(int64(u.FullQuorum))
	e.Float(u.Tolerance.Abs)
	e.Float(u.Tolerance.Rel)
	agree := sortedKeys(u.Agree)
	e.Uint(uint64(len(agree)))
	for _, k := range agree {
		e.Str(k)
		e.bool(u.Agree[k])
	}
	e.Float(u.CheckpointSeconds)
	if e.v >= 4 {
		e.bool(u.NoShare)
		e.Str(u.SharedWith)
		e.Uint(uint64(len(u.Followers)))
		for _, f := range u.Followers {
			e.Str(f)
		}
	}
	e.Uint(uint64(len(u.Tasks)))
	for i, id := range u.Tasks {
		t := st.Tasks[id]
		if t == nil || t.ID != taskID(u.ID, i) || t.Unit != u.ID {
			return fmt.Errorf("unit %q lists task %q, which is not its task %d", u.ID, id, i)
		}
		// A task listed twice is numbered once: the counts tell.
		e.taskNum[t] = uint64(e.tasks)
		e.tasks++
		var flags uint64
		// Only assigned tasks are in Assigned; if one were not, the count of
		// them written would not match.
		if t.State == wu.TaskAssigned && st.Assigned[id] {
			flags = 1
			e.assigned++
		}
		e.Uint(flags)
		e.sym(string(t.State))
		e.sym(t.Host)
		e.time(t.Sent)
		e.time(t.LeaseUntil)
		e.time(t.Deadline)
		e.Float(t.Fraction)
		e.sym(string(t.Outcome))
		e.Str(string(t.Output))
		e.Int(t.OutputSize)
		e.Float(t.CPUSeconds)
		e.sym(t.Reason)
		e.sym(string(t.Validity))
		e.Int(int64(t.Lost))
		e.Float(t.Claim)
		e.Float(t.Credit)
		e.checkpoint(t.Checkpoint)
		if e.v >= 4 {
			e.Int(t.Est)
			e.Int(t.Expect)
		}
	}
	return nil
}

// taskID names the i-th task of unit u.
func taskID(u string, i int) string { return u + "_" + strconv.Itoa(i) }

type decoder struct {
	snapcodec.Decoder
	syms []string
	v    uint64 // the snapshot's version
}

func (d *decoder) bytes() []byte {
	n := d.Count()
	if d.Err != nil {
		return nil
	}
	b := make([]byte, n)
	d.Off += copy(b, d.B[d.Off:])
	return b
}

func (d *decoder) sym() string {
	n := d.Uint()
	switch {
	case d.Err != nil:
		return ""
	case n < uint64(len(d.syms)):
		return d.syms[n]
	case n == uint64(len(d.syms)):
		s := d.Str()
		d.syms = append(d.syms, s)
		return s
	}
	d.Fail("string %d of %d", n, len(d.syms))
	return ""
}

func (d *decoder) time() time.Time {
	ns := d.Uint()
	if ns == 0 || d.Err != nil {
		return time.Time{}
	}
	if ns > 1e9 {
		d.Fail("%d nanoseconds", ns-1)
		return time.Time{}
	}
	return time.Unix(d.Int(), int64(ns-1)).UTC()
}

func (d *decoder) state() *state {
	if len(d.B) < len(snapshotMagic) || string(d.B[:len(snapshotMagic)]) != snapshotMagic {
		d.Fail("not a scheduler snapshot")
		return nil
	}
	d.Off = len(snapshotMagic)
	v := d.Uint()
	d.v = v
	if (v < legacyCreditVersion || v > snapshotVersion) && d.Err == nil {
		d.Fail("snapshot version %d, this scheduler reads %d to %d", v, legacyCreditVersion, snapshotVersion)
	}
	st := newState()
	st.Now = d.time()
	st.NextUnit = d.Uint()
	units, tasks, assigned := d.Count(), d.Count(), d.Count()
	st.Units = make(map[string]*unit, units)
	st.Tasks = make(map[string]*task, tasks)
	st.Assigned = make(map[string]bool, assigned)

	if small := d.bytes(); d.Err == nil {
		tb := tables{}
		if err := json.Unmarshal(small, &tb); err != nil {
			d.Fail("tables: %v", err)
		}
		fresh := newState()
		st.Apps, st.Hosts, st.Users, st.Teams = orEmpty(tb.Apps, fresh.Apps), orEmpty(tb.Hosts, fresh.Hosts), orEmpty(tb.Users, fresh.Users), orEmpty(tb.Teams, fresh.Teams)
		st.NextUser, st.NextTeam, st.NextHost = tb.NextUser, tb.NextTeam, tb.NextHost
		st.AppSigs, st.Compare = orEmpty(tb.AppSigs, fresh.AppSigs), orEmpty(tb.Compare, fresh.Compare)
		st.CodeSigs = orEmpty(tb.CodeSigs, fresh.CodeSigs)
		st.Garbage = tb.Garbage
		st.Outbox, st.NextOutput = tb.Outbox, tb.NextOutput
		st.AppFPOps = orEmpty(tb.AppFPOps, fresh.AppFPOps)
		st.HostNums, st.Progress, st.Counters = tb.HostNums, orEmpty(tb.Progress, fresh.Progress), tb.Counters
		st.Servers = tb.Servers
		if err := checkOutbox(st.Outbox, st.NextOutput); err != nil {
			d.Fail("outbox: %v", err)
		}
		if v == legacyCreditVersion && d.Err == nil {
			if err := openingBalances(small, st); err != nil {
				d.Fail("credit: %v", err)
			}
		}
	}

	numbered := make([]*task, 0, tasks)
	for n := d.Count(); n > 0 && d.Err == nil; n-- {
		key := d.Str()
		b := &batch{Name: d.Str(), App: d.sym(), Pending: int(d.Int()), Valid: int(d.Int()), Errored: int(d.Int())}
		if d.v >= 4 {
			b.Cancelled = int(d.Int())
		}
		st.Batches[key] = b
		units := d.Count()
		b.Units = make([]string, 0, units)
		b.Names = make([]string, 0, units)
		for ; units > 0 && d.Err == nil; units-- {
			u := d.unit(st, key, &numbered)
			b.Units = append(b.Units, u.ID)
			b.Names = append(b.Names, u.Name)
		}
	}

	for n := d.Count(); n > 0 && d.Err == nil; n-- {
		key := d.Str()
		s := &session{Last: d.Uint(), LastUsed: d.time(), Replies: map[uint64][]byte{}}
		for r := d.Count(); r > 0 && d.Err == nil; r-- {
			q := d.Uint()
			s.Replies[q] = d.bytes()
		}
		st.Sessions[key] = s
	}

	for _, q := range []*[]string{&st.Unsent, &st.Retry} {
		n := d.Count()
		if n > 0 {
			*q = make([]string, 0, n)
		}
		for ; n > 0 && d.Err == nil; n-- {
			i := d.Uint()
			if i >= uint64(len(numbered)) {
				d.Fail("task %d of %d", i, len(numbered))
				break
			}
			*q = append(*q, numbered[i].ID)
		}
	}

	if d.v >= 4 {
		for n := d.Count(); n > 0 && d.Err == nil; n-- {
			k := wu.Hash(d.Str())
			st.Shares[k] = d.Str()
		}
	}
	return st
}

func (d *decoder) unit(st *state, batch string, tasks *[]*task) *unit {
	u := &unit{ID: d.Str(), Name: d.Str(), Batch: batch, App: d.sym(), AppHash: wu.Hash(d.sym()), AppSize: d.Int()}
	if n := d.Count(); n > 0 {
		u.Args = make([]string, n)
		for i := range u.Args {
			u.Args[i] = d.Str()
		}
	}
	u.Stdin = wu.Hash(d.Str())
	u.FPOps = d.Float()
	u.Limits = wu.Limits{MemoryBytes: d.Int(), OutputBytes: d.Int(), MaxSeconds: d.Float()}
	u.Deadline = d.Float()
	u.Replication, u.Quorum, u.MaxTasks = int(d.Int()), int(d.Int()), int(d.Int())
	u.State = wu.WorkUnitState(d.sym())
	u.Canonical = wu.Hash(d.Str())
	u.OutputSize = d.Int()
	u.Reason = d.sym()
	u.Adaptive = d.Uint() != 0
	u.FullQuorum = int(d.Int())
	u.Tolerance = wu.Tolerance{Abs: d.Float(), Rel: d.Float()}
	if n := d.Count(); n > 0 {
		u.Agree = make(map[string]bool, n)
		for ; n > 0 && d.Err == nil; n-- {
			k := d.Str()
			u.Agree[k] = d.Uint() != 0
		}
	}
	u.CheckpointSeconds = d.Float()
	if d.v >= 4 {
		u.NoShare = d.Uint() != 0
		u.SharedWith = d.Str()
		if n := d.Count(); n > 0 {
			u.Followers = make([]string, n)
			for i := range u.Followers {
				u.Followers[i] = d.Str()
			}
		}
	}
	n := d.Count()
	if n > 0 { // a unit that waits for another's result has none
		u.Tasks = make([]string, n)
	}
	for i := range u.Tasks {
		t := &task{ID: taskID(u.ID, i), Unit: u.ID}
		if d.Uint()&1 != 0 {
			st.Assigned[t.ID] = true
		}
		t.State = wu.TaskState(d.sym())
		t.Host = d.sym()
		t.Sent, t.LeaseUntil, t.Deadline = d.time(), d.time(), d.time()
		t.Fraction = d.Float()
		t.Outcome = wu.Outcome(d.sym())
		t.Output = wu.Hash(d.Str())
		t.OutputSize = d.Int()
		t.CPUSeconds = d.Float()
		t.Reason = d.sym()
		t.Validity = wu.Validity(d.sym())
		t.Lost = int(d.Int())
		t.Claim, t.Credit = d.Float(), d.Float()
		if d.Uint() != 0 {
			t.Checkpoint = &wu.CheckpointRef{Hash: wu.Hash(d.Str()), Size: d.Int(), Seq: d.Uint(), Base: wu.Hash(d.Str()),
				BaseSize: d.Int(), Progress: d.Float(), CPUSeconds: d.Float()}
		}
		if d.v >= 4 {
			t.Est, t.Expect = d.Int(), d.Int()
		}
		u.Tasks[i] = t.ID
		st.Tasks[t.ID] = t
		*tasks = append(*tasks, t)
	}
	st.Units[u.ID] = u
	return u
}

// orEmpty is m, or empty when a snapshot had none of that table.
func orEmpty[K comparable, V any](m, empty map[K]V) map[K]V {
	if m == nil {
		return empty
	}
	return m
}

// sortedKeys lists a map's keys in order, so that snapshots and status
// replies are the same on every member.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SnapshotSize estimates the bytes Snapshot would write now, from the
// number of things the state holds rather than by writing it: the virtual
// peer spaces its snapshots by it (vpeer.Sizer). Units and tasks are most of
// a large state (about 100 and 65 bytes each); hosts go through the JSON
// tables and sessions keep a few replies each.
func (m *Machine) SnapshotSize() int {
	return 96*len(m.st.Units) + 64*len(m.st.Tasks) + 512*len(m.st.Hosts) + 1024*len(m.st.Sessions)
}
