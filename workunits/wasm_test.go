package workunits

import (
	"os"
	"strings"
	"testing"
)

// leb encodes n as unsigned LEB128.
func leb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func section(id byte, body ...byte) []byte {
	return append(append([]byte{id}, leb(len(body))...), body...)
}

func str(s string) []byte { return append(leb(len(s)), s...) }

func join(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var header = []byte("\x00asm\x01\x00\x00\x00")

// module builds a small module importing imports (module.name pairs, all
// functions of type 0) and exporting a memory and the named functions.
func module(imports [][2]string, exports ...string) []byte {
	types := section(1, 1, 0x60, 0, 0) // one type: [] -> []
	var imp []byte
	imp = append(imp, leb(len(imports))...)
	for _, i := range imports {
		imp = append(imp, join(str(i[0]), str(i[1]), []byte{0, 0})...)
	}
	funcs := section(3, 1, 0)
	mem := section(5, 1, 0, 1)
	var exp []byte
	exp = append(exp, leb(len(exports)+1)...)
	exp = append(exp, join(str("memory"), []byte{2, 0})...)
	for _, e := range exports {
		exp = append(exp, join(str(e), []byte{0, byte(len(imports))})...)
	}
	code := section(10, 1, 2, 0, 0x0b)
	return join(header, types, section(2, imp...), funcs, mem, section(7, exp...), code)
}

func TestCheckModule(t *testing.T) {
	good := module([][2]string{{WASIModule, "fd_write"}}, "_start")
	if err := CheckModule(good); err != nil {
		t.Fatalf("good module refused: %v", err)
	}
	if err := CheckModule(module(nil, "step")); err != nil {
		t.Fatalf("reactor refused: %v", err)
	}
	m, err := ParseModule(good)
	if err != nil || len(m.Imports) != 1 || m.Imports[0].Name != "fd_write" || len(m.Exports) != 2 {
		t.Fatalf("parsed %+v %v", m, err)
	}
	bad := map[string][]byte{
		"not wasm":           []byte("#!/bin/sh\necho hi\n"),
		"empty":              nil,
		"wrong version":      append([]byte("\x00asm\x02\x00\x00\x00"), good[8:]...),
		"truncated":          good[:len(good)-3],
		"foreign import":     module([][2]string{{"env", "system"}}, "_start"),
		"no entry":           module(nil, "main"),
		"sections reordered": join(header, section(7, 0), section(1, 0)),
		"huge section size":  join(header, []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}),
		"overlong leb":       join(header, []byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}),
		"leftover bytes":     join(header, section(7, 0, 0)),
	}
	for name, b := range bad {
		err := CheckModule(b)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if ErrorCode(err) != CodeBadRequest || err.Error() == "" {
			t.Errorf("%s: error %v", name, err)
		}
	}
	if err := CheckModule(module([][2]string{{"env", "system"}}, "_start")); !strings.Contains(err.Error(), "env.system") {
		t.Errorf("foreign import error does not name the import: %v", err)
	}
}

func TestCheckModuleAcceptsSampleApps(t *testing.T) {
	for _, p := range []string{"../apps/primes.wasm", "../apps/mandel.wasm"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("sample app: %v", err)
		}
		if err := CheckModule(b); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func FuzzParseModule(f *testing.F) {
	f.Add(module([][2]string{{WASIModule, "fd_write"}}, "_start"))
	f.Add(module(nil, "step"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x02\x05\x01\x00\x00\x03\x05"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseModule(b)
		if err == nil && m == nil {
			t.Fatal("nil module without error")
		}
		_ = CheckModule(b)
	})
}
