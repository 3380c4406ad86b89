package workunits

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// globalsModule is a reactor with a memory, a `step` function and three
// globals: a mutable i32 (exported as "sp" when exportSP), an immutable i64
// and a mutable f64. With data it ends with a data section, which the new
// export section must precede.
func globalsModule(exportSP, data bool) []byte {
	types := section(1, 1, 0x60, 0, 1, 0x7f)
	funcs := section(3, 1, 0)
	mem := section(5, 1, 0, 1)
	globals := section(6, join([]byte{3},
		[]byte{0x7f, 1, 0x41, 0x80, 0x80, 0x04, 0x0b},             // mut i32 = 65536
		[]byte{0x7e, 0, 0x42, 0x7f, 0x0b},                         // i64 = -1
		[]byte{0x7c, 1, 0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x0b}, // mut f64 = 1.0
	)...)
	exp := join(str("memory"), []byte{2, 0}, str("step"), []byte{0, 0})
	n := byte(2)
	if exportSP {
		exp = join(exp, str("sp"), []byte{3, 0})
		n++
	}
	code := section(10, 1, 4, 0, 0x41, 1, 0x0b)
	parts := [][]byte{header, types, funcs, mem, globals, section(7, append([]byte{n}, exp...)...), code}
	if data {
		parts = append(parts, section(11, 0))
	}
	return join(parts...)
}

func TestExportMutableGlobals(t *testing.T) {
	for _, c := range []struct {
		name     string
		in       []byte
		want     []string
		wantSame bool
	}{
		{"one hidden", globalsModule(true, false), []string{"momonga.global.2"}, false},
		{"two hidden, before data", globalsModule(false, true), []string{"momonga.global.0", "momonga.global.2"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := CheckModule(c.in); err == nil || !strings.Contains(err.Error(), "app add") {
				t.Fatalf("unprepared reactor accepted or unclear error: %v", err)
			}
			out, err := PrepareModule(c.in)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseModule(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range c.want {
				found := false
				for _, e := range m.Exports {
					found = found || e.Kind == 3 && e.Name == name
				}
				if !found {
					t.Errorf("no export %s in %+v", name, m.Exports)
				}
			}
			again, err := ExportMutableGlobals(out)
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("second rewrite changed the module (%v)", err)
			}
		})
	}
	// No export section at all: one is added before the code section.
	noExports := join(header, section(1, 1, 0x60, 0, 0), section(3, 1, 0),
		section(6, 1, 0x7f, 1, 0x41, 0, 0x0b), section(10, 1, 2, 0, 0x0b))
	out, err := ExportMutableGlobals(noExports)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ParseModule(out); err != nil || len(m.Exports) != 1 || m.Exports[0].Name != "momonga.global.0" {
		t.Fatalf("module without exports: %+v %v", m, err)
	}
	// A command module is published as it is.
	cmd := module([][2]string{{WASIModule, "fd_write"}}, "_start")
	if out, err := PrepareModule(cmd); err != nil || !bytes.Equal(out, cmd) {
		t.Errorf("command module changed or refused: %v", err)
	}
}

func TestPrepareSampleReactors(t *testing.T) {
	for _, p := range []string{"../apps/mandelr.wasm", "../apps/mandelc.wasm"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out, err := PrepareModule(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		m, _ := ParseModule(out)
		if len(m.MutableGlobalExports()) == 0 {
			t.Errorf("%s: no mutable globals found", p)
		}
		for idx, name := range m.MutableGlobalExports() {
			if name == "" {
				t.Errorf("%s: global %d not exported", p, idx)
			}
		}
	}
}

func FuzzExportMutableGlobals(f *testing.F) {
	f.Add(globalsModule(false, true))
	f.Add(globalsModule(true, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := ExportMutableGlobals(b)
		if err != nil {
			return
		}
		m, err := ParseModule(out)
		if err != nil {
			t.Fatalf("rewrite of a parsable module does not parse: %v", err)
		}
		for idx, name := range m.MutableGlobalExports() {
			if name == "" {
				t.Fatalf("global %d still hidden", idx)
			}
		}
	})
}
