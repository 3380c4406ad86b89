package accounting

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/momonga-project/momonga/project/internal/snapcodec"
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
	snapcodec.Encoder
	w   io.Writer
	err error
}

func (e *snapEncoder) time(t time.Time) {
	if t.IsZero() {
		e.Uint(0)
		return
	}
	e.Uint(1)
	e.Int(t.Unix())
	e.Uint(uint64(t.Nanosecond()))
}

func (e *snapEncoder) history(h []Bucket) {
	e.Uint(uint64(len(h)))
	prev := int32(0)
	for _, b := range h {
		e.Int(int64(b.At) - int64(prev))
		e.Float(b.Credit)
		prev = b.At
	}
}

// flush writes what is encoded once there is enough of it.
func (e *snapEncoder) flush(force bool) {
	if e.err == nil && (force || len(e.B) >= 1<<20) {
		_, e.err = e.w.Write(e.B)
	}
	if len(e.B) >= 1<<20 || force {
		e.B = e.B[:0]
	}
}

// Snapshot writes the whole state.
func (m *Machine) Snapshot(w io.Writer) error {
	st := m.st
	e := &snapEncoder{Encoder: snapcodec.Encoder{B: make([]byte, 0, 1<<20+4096)}, w: w}
	e.B = append(e.B, snapshotMagic...)
	e.Uint(snapshotVersion)
	e.Uint(uint64(len(st.Sources)))
	for _, id := range slices.Sorted(maps.Keys(st.Sources)) {
		e.Str(id)
		e.Uint(st.Sources[id])
	}
	for _, t := range []map[string]*Account{st.Hosts, st.Users, st.Teams} {
		e.Uint(uint64(len(t)))
		for _, id := range slices.Sorted(maps.Keys(t)) {
			a := t[id]
			e.Str(id)
			e.Float(a.Credit)
			e.Float(a.RAC.Avg)
			e.time(a.RAC.Time)
			e.Uint(uint64(a.Results))
			e.history(a.Days)
			e.history(a.Months)
			e.flush(false)
		}
	}
	e.history(st.Project.Hours)
	e.history(st.Project.Days)
	e.history(st.Project.Months)
	e.Uint(uint64(len(st.Members)))
	for _, u := range slices.Sorted(maps.Keys(st.Members)) {
		e.Str(u)
		e.Str(st.Members[u])
		e.flush(false)
	}
	e.flush(true)
	if e.err != nil {
		return fmt.Errorf("accounting snapshot: %w", e.err)
	}
	return nil
}

type snapDecoder struct {
	snapcodec.Decoder
}

func (d *snapDecoder) time() time.Time {
	switch d.Uint() {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.Fail("bad time")
		return time.Time{}
	}
	sec, ns := d.Int(), d.Uint()
	if ns >= 1e9 {
		d.Fail("time with %d nanoseconds", ns)
	}
	t := time.Unix(sec, int64(ns)).UTC()
	if d.Err == nil && t.IsZero() {
		d.Fail("a zero time written as set")
	}
	return t
}

func (d *snapDecoder) history() []Bucket {
	n := d.Count()
	if n == 0 {
		return nil
	}
	h := make([]Bucket, 0, n)
	at := int64(0)
	for range n {
		at += d.Int()
		if at < math.MinInt32 || at > math.MaxInt32 {
			d.Fail("history period %d", at)
		}
		h = append(h, Bucket{At: int32(at), Credit: d.Float()})
		if d.Err != nil {
			return nil
		}
	}
	return h
}

// key reads a table's next id, which must come after the one before.
func (d *snapDecoder) key(prev *string, i int, what string) string {
	k := d.Str()
	if d.Err == nil && i > 0 && k <= *prev {
		d.Fail("%s %q out of order", what, k)
	}
	*prev = k
	return k
}

// decodeBinary reads a binary snapshot (after its magic).
func decodeBinary(b []byte) (*state, error) {
	d := &snapDecoder{snapcodec.Decoder{B: b}}
	if v := d.Uint(); d.Err == nil && v != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d: this accounting peer reads 1 to %d", v, snapshotVersion)
	}
	st := newState()
	var prev string
	for i := range d.Count() {
		id := d.key(&prev, i, "source")
		st.Sources[id] = d.Uint()
	}
	for _, t := range []struct {
		name  string
		table map[string]*Account
	}{{"host", st.Hosts}, {"user", st.Users}, {"team", st.Teams}} {
		n := d.Count()
		for i := 0; i < n && d.Err == nil; i++ {
			id := d.key(&prev, i, t.name)
			a := &Account{Credit: d.Float()}
			a.RAC.Avg = d.Float()
			a.RAC.Time = d.time()
			if r := d.Uint(); r > math.MaxInt32 {
				d.Fail("%s %q: %d results", t.name, id, r)
			} else {
				a.Results = int(r)
			}
			a.Days, a.Months = d.history(), d.history()
			t.table[id] = a
		}
	}
	st.Project = Totals{Hours: d.history(), Days: d.history(), Months: d.history()}
	for i := range d.Count() {
		u := d.key(&prev, i, "member")
		st.Members[u] = d.Str()
		if d.Err != nil {
			break
		}
	}
	d.End()
	if d.Err != nil {
		return nil, d.Err
	}
	return st, nil
}

// isBinary reports whether a snapshot is binary, and its bytes after the
// magic.
func isBinary(b []byte) ([]byte, bool) {
	return bytes.CutPrefix(b, snapshotMagic)
}
