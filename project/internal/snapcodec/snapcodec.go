// Package snapcodec holds the primitives the scheduler's and the accounting
// peer's binary snapshots are written with (DESIGN §2: both machines are
// pure, and so is this): varints, IEEE 754 floats and length-prefixed
// strings appended to a buffer, and a decoder that keeps its first error,
// so that a restore reads on and checks once, and that refuses a length
// larger than the bytes left, so that a corrupt snapshot cannot make a huge
// allocation. What each snapshot holds, and how it writes times, is its
// own.
package snapcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Encoder appends to B.
type Encoder struct {
	B []byte
}

// Uint appends v as a uvarint.
func (e *Encoder) Uint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

// Int appends v as a varint.
func (e *Encoder) Int(v int64) { e.B = binary.AppendVarint(e.B, v) }

// Float appends f's IEEE 754 bits, little-endian.
func (e *Encoder) Float(f float64) {
	e.B = binary.LittleEndian.AppendUint64(e.B, math.Float64bits(f))
}

// Str appends s's length, then s.
func (e *Encoder) Str(s string) {
	e.Uint(uint64(len(s)))
	e.B = append(e.B, s...)
}

// ErrTruncated is a snapshot that ends within a value.
var ErrTruncated = errors.New("truncated")

// Decoder reads B from Off. Once Err is set, every read returns the zero
// value and leaves Off where it is.
type Decoder struct {
	B   []byte
	Off int
	Err error
}

// Fail sets Err, unless an earlier error is set.
func (d *Decoder) Fail(format string, args ...any) {
	if d.Err == nil {
		d.Err = fmt.Errorf(format, args...)
	}
}

// Uint reads a uvarint.
func (d *Decoder) Uint() uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B[d.Off:])
	if n <= 0 {
		d.Err = ErrTruncated
		return 0
	}
	d.Off += n
	return v
}

// Int reads a varint: a uvarint holding the value zig-zag encoded, as
// binary.Varint reads it.
func (d *Decoder) Int() int64 {
	u := d.Uint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// Count reads a length, refusing one larger than the bytes left could hold.
func (d *Decoder) Count() int {
	n := d.Uint()
	if n > uint64(len(d.B)-d.Off) {
		d.Fail("count %d with %d bytes left", n, len(d.B)-d.Off)
		return 0
	}
	return int(n)
}

// Float reads IEEE 754 bits, little-endian.
func (d *Decoder) Float() float64 {
	if d.Err != nil {
		return 0
	}
	if len(d.B)-d.Off < 8 {
		d.Err = ErrTruncated
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.B[d.Off:]))
	d.Off += 8
	return v
}

// Str reads a length, then a string of that many bytes.
func (d *Decoder) Str() string {
	n := d.Count()
	if d.Err != nil || n == 0 {
		return ""
	}
	s := string(d.B[d.Off : d.Off+n])
	d.Off += n
	return s
}

// End fails if bytes are left after what was read.
func (d *Decoder) End() {
	if d.Err == nil && d.Off != len(d.B) {
		d.Fail("%d bytes after the end", len(d.B)-d.Off)
	}
}
