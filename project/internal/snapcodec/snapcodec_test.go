package snapcodec

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var e Encoder
	e.Uint(math.MaxUint64)
	e.Int(-300)
	e.Float(-1.5)
	e.Str("")
	e.Str("héllo")
	d := Decoder{B: e.B}
	got := []any{d.Uint(), d.Int(), d.Float(), d.Str(), d.Str()}
	want := []any{uint64(math.MaxUint64), int64(-300), -1.5, "", "héllo"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %v, wrote %v", got, want)
	}
	d.End()
	if d.Err != nil {
		t.Fatal(d.Err)
	}
}

func TestDecoderKeepsItsFirstError(t *testing.T) {
	var e Encoder
	e.Uint(1000) // a length with no bytes behind it
	e.Uint(7)
	d := Decoder{B: e.B}
	if n := d.Count(); n != 0 || d.Err == nil {
		t.Fatalf("Count of a length past the end: %d, %v", n, d.Err)
	}
	first := d.Err
	if v := d.Uint(); v != 0 || d.Err != first {
		t.Fatalf("read after an error: %d, %v", v, d.Err)
	}
	d = Decoder{B: []byte{1, 2, 3}}
	if v := d.Float(); v != 0 || !errors.Is(d.Err, ErrTruncated) {
		t.Fatalf("Float of 3 bytes: %g, %v", v, d.Err)
	}
	d = Decoder{B: []byte{0x80}}
	if v := d.Uint(); v != 0 || !errors.Is(d.Err, ErrTruncated) {
		t.Fatalf("Uint cut short: %d, %v", v, d.Err)
	}
	d = Decoder{B: []byte{1, 2}}
	d.Uint()
	d.End()
	if d.Err == nil {
		t.Fatal("End with a byte left did not fail")
	}
}

// Int reads what binary.Varint reads, to the edges of int64.
func TestIntReadsVarints(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64} {
		var e Encoder
		e.Int(v)
		d := Decoder{B: e.B}
		if got := d.Int(); got != v || d.Err != nil {
			t.Errorf("Int of %d: %d, %v", v, got, d.Err)
		}
	}
}

// Any bytes decode without a panic, and no string is longer than the input.
func FuzzDecoder(f *testing.F) {
	var e Encoder
	e.Str("abc")
	e.Int(-1)
	e.Float(2)
	f.Add(e.B)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := Decoder{B: b}
		for d.Err == nil && d.Off < len(b) {
			if s := d.Str(); len(s) > len(b) {
				t.Fatalf("string of %d bytes from %d", len(s), len(b))
			}
			d.Int()
			d.Float()
		}
		if d.Off > len(b) {
			t.Fatalf("offset %d past %d bytes", d.Off, len(b))
		}
	})
}
