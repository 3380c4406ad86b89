package deptest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRule(t *testing.T) {
	forbidden := map[string]string{Module + "/project/": "project side", "example.org/x": "x"}
	for dep, want := range map[string]string{
		Module + "/project/admin":  Module + "/project/",
		Module + "/projectish":     "",
		"example.org/x":            "example.org/x",
		"example.org/x/y":          "",
		Module + "/client/project": "",
	} {
		if got, _ := rule(forbidden, dep); got != want {
			t.Errorf("rule for %s: %q, want %q", dep, got, want)
		}
	}
}

func TestDiffIgnoresComments(t *testing.T) {
	added, removed := diff([]string{"# old header", "a", "b"}, []string{"# new header", "b", "c"})
	if fmt.Sprint(added, removed) != "[c] [a]" {
		t.Errorf("added %v, removed %v", added, removed)
	}
}

// TestDescribe lists a package of this module that links no other module.
func TestDescribe(t *testing.T) {
	b, err := Describe(Module + "/internal/procstat")
	if err != nil {
		t.Fatal(err)
	}
	body := lines(b)
	if len(body) != 3 || !strings.HasPrefix(body[0], "# ") || body[2] != Module+"/internal/procstat" {
		t.Errorf("depends of procstat:\n%s", b)
	}
}

// fakeT records Check's verdict.
type fakeT struct{ errors []string }

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}
func (f *fakeT) Fatalf(format string, a ...any) { panic("Check gave up: " + fmt.Sprintf(format, a...)) }

// TestCheckCatchesAForbiddenImport: internal/atomicfile links os;
// forbidding os catches it, with the chain of imports, while its list
// matches.
func TestCheckCatchesAForbiddenImport(t *testing.T) {
	pkg := Module + "/internal/atomicfile"
	list := filepath.Join(t.TempDir(), "depends.txt")
	Check(t, Binary{Package: pkg, File: list, Update: true})
	var ft fakeT
	Check(&ft, Binary{Package: pkg, File: list, Forbidden: map[string]string{"os": "no files"}})
	if len(ft.errors) != 1 {
		t.Fatalf("errors %q, want the forbidden import alone", ft.errors)
	}
	if want := "links os (no files) on linux/amd64, linux/arm64, darwin/arm64, windows/amd64: " + pkg + " → os"; !strings.Contains(ft.errors[0], want) {
		t.Errorf("error %q, want %q", ft.errors[0], want)
	}
	// A list that names a package no longer linked.
	if err := os.WriteFile(list, []byte(Module+"/gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ft = fakeT{}
	Check(&ft, Binary{Package: pkg, File: list})
	if len(ft.errors) != 1 || !strings.Contains(ft.errors[0], "no longer linked: "+Module+"/gone") || !strings.Contains(ft.errors[0], "now linked: "+pkg) {
		t.Errorf("errors %q", ft.errors)
	}
}
