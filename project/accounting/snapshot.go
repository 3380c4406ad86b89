package accounting

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"
)

// Snapshots (version 3 on) are binary, as the scheduler's: a million
// hosts' accounts and histories take about a tenth of their JSON and are
// written and read in seconds. Restore still reads the JSON snapshots of
// versions 1 and 2, so that a server upgraded restores what it wrote
// before. The same state writes the same bytes: every table in key order.
//
// Layout: snapshotMagic, the version (uvarint), the sources (count, then
// id and last grant id each), the hosts, users and teams (count, then per
// account its id, credit, recent average and its time, results, days and
// months), the project's hours, days and months, and the members (count,
// then user and team ids). Counts and integers are varints, credit
// IEEE 754 little-endian, a time 0 (none) or 1 then Unix seconds and
// nanoseconds, a history
// its length then each period as the difference from the one before.
const snapshotVersion = 3

// snapshotMagic starts a binary snapshot: a JSON one starts with '{'.
var snapshotMagic = []byte("\x00momonga-accounting\x00")

type snapEncoder struct {
	w   io.Writer
	b   []byte
	err error
}

func (e *snapEncoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *snapEncoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *snapEncoder) float(f float64) {
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f))
}
func (e *snapEncoder) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *snapEncoder) time(t time.Time) {
	if t.IsZero() {
		e.uint(0)
		return
	}
	e.uint(1)
	e.int(t.Unix())
	e.uint(uint64(t.Nanosecond()))
}

func (e *snapEncoder) history(h []Bucket) {
	e.uint(uint64(len(h)))
	prev := int32(0)
	for _, b := range h {
		e.int(int64(b.At) - int64(prev))
		e.float(b.Credit)
		prev = b.At
	}
}

// flush writes what is encoded once there is enough of it.
func (e *snapEncoder) flush(force bool) {
	if e.err == nil && (force || len(e.b) >= 1<<20) {
		_, e.err = e.w.Write(e.b)
	}
	if len(e.b) >= 1<<20 || force {
		e.b = e.b[:0]
	}
}

// Snapshot writes the whole state.
func (m *Machine) Snapshot(w io.Writer) error {
	st := m.st
	e := &snapEncoder{w: w, b: make([]byte, 0, 1<<20+4096)}
	e.b = append(e.b, snapshotMagic...)
	e.uint(snapshotVersion)
	e.uint(uint64(len(st.Sources)))
	for _, id := range slices.Sorted(maps.Keys(st.Sources)) {
		e.str(id)
		e.uint(st.Sources[id])
	}
	for _, t := range []map[string]*Account{st.Hosts, st.Users, st.Teams} {
		e.uint(uint64(len(t)))
		for _, id := range slices.Sorted(maps.Keys(t)) {
			a := t[id]
			e.str(id)
			e.float(a.Credit)
			e.float(a.RAC.Avg)
			e.time(a.RAC.Time)
			e.uint(uint64(a.Results))
			e.history(a.Days)
			e.history(a.Months)
			e.flush(false)
		}
	}
	e.history(st.Project.Hours)
	e.history(st.Project.Days)
	e.history(st.Project.Months)
	e.uint(uint64(len(st.Members)))
	for _, u := range slices.Sorted(maps.Keys(st.Members)) {
		e.str(u)
		e.str(st.Members[u])
		e.flush(false)
	}
	e.flush(true)
	if e.err != nil {
		return fmt.Errorf("accounting snapshot: %w", e.err)
	}
	return nil
}

type snapDecoder struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("truncated")

func (d *snapDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *snapDecoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.off += n
	return v
}

func (d *snapDecoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.off += n
	return v
}

// count reads a length, refusing one larger than the bytes left could
// hold, so that a corrupt length cannot make a huge allocation.
func (d *snapDecoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)-d.off) {
		d.fail("count %d with %d bytes left", n, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

func (d *snapDecoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 8 {
		d.err = errTruncated
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
	d.off += 8
	return v
}

func (d *snapDecoder) str() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s
}

func (d *snapDecoder) time() time.Time {
	switch d.uint() {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.fail("bad time")
		return time.Time{}
	}
	sec, ns := d.int(), d.uint()
	if ns >= 1e9 {
		d.fail("time with %d nanoseconds", ns)
	}
	t := time.Unix(sec, int64(ns)).UTC()
	if d.err == nil && t.IsZero() {
		d.fail("a zero time written as set")
	}
	return t
}

func (d *snapDecoder) history() []Bucket {
	n := d.count()
	if n == 0 {
		return nil
	}
	h := make([]Bucket, 0, n)
	at := int64(0)
	for range n {
		at += d.int()
		if at < math.MinInt32 || at > math.MaxInt32 {
			d.fail("history period %d", at)
		}
		h = append(h, Bucket{At: int32(at), Credit: d.float()})
		if d.err != nil {
			return nil
		}
	}
	return h
}

// key reads a table's next id, which must come after the one before.
func (d *snapDecoder) key(prev *string, i int, what string) string {
	k := d.str()
	if d.err == nil && i > 0 && k <= *prev {
		d.fail("%s %q out of order", what, k)
	}
	*prev = k
	return k
}

// decodeBinary reads a binary snapshot (after its magic).
func decodeBinary(b []byte) (*state, error) {
	d := &snapDecoder{b: b}
	if v := d.uint(); d.err == nil && v != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d: this accounting peer reads 1 to %d", v, snapshotVersion)
	}
	st := newState()
	var prev string
	for i := range d.count() {
		id := d.key(&prev, i, "source")
		st.Sources[id] = d.uint()
	}
	for _, t := range []struct {
		name  string
		table map[string]*Account
	}{{"host", st.Hosts}, {"user", st.Users}, {"team", st.Teams}} {
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			id := d.key(&prev, i, t.name)
			a := &Account{Credit: d.float()}
			a.RAC.Avg = d.float()
			a.RAC.Time = d.time()
			if r := d.uint(); r > math.MaxInt32 {
				d.fail("%s %q: %d results", t.name, id, r)
			} else {
				a.Results = int(r)
			}
			a.Days, a.Months = d.history(), d.history()
			t.table[id] = a
		}
	}
	st.Project = Totals{Hours: d.history(), Days: d.history(), Months: d.history()}
	for i := range d.count() {
		u := d.key(&prev, i, "member")
		st.Members[u] = d.str()
		if d.err != nil {
			break
		}
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes after the end", len(d.b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return st, nil
}

// isBinary reports whether a snapshot is binary, and its bytes after the
// magic.
func isBinary(b []byte) ([]byte, bool) {
	return bytes.CutPrefix(b, snapshotMagic)
}
