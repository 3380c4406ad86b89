// Package deptest pins what a binary links, as tailscale's depaware does:
// a test beside each main compares the packages of this module and the
// other modules that `go list -deps` finds for it with a list checked in
// beside it (depends.txt), so that a new dependency shows in review, and
// fails if the binary links a package it must never link (the volunteer's
// client links nothing under project/, nor a NATS server).
package deptest

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Module is this module's path.
const Module = "github.com/momonga-project/momonga"

// T is the part of *testing.T that Check uses.
type T interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Binary is what a test pins of one main package.
type Binary struct {
	Package string // import path of the main package
	File    string // the checked-in list, "depends.txt" beside the test
	// Forbidden are import paths, or prefixes ending in "/", the binary
	// must not link on any of Platforms, each with the reason. TestSupport
	// is forbidden to every binary.
	Forbidden map[string]string
	// Update rewrites File from what the binary links now rather than
	// comparing (`go test -update`).
	Update bool
}

// TestSupport are the packages only tests may link.
var TestSupport = []string{Module + "/internal/wait", Module + "/internal/xvfbtest", Module + "/internal/deptest", Module + "/vpeer/vpeertest"}

// Pinned is the platform the list in File is for; a binary links a few
// platform packages more or less elsewhere.
const Pinned = "linux/amd64"

// Platforms are where the Forbidden rules are checked: every platform a
// volunteer's client is built for.
var Platforms = []string{"linux/amd64", "linux/arm64", "darwin/arm64", "windows/amd64"}

// Check compares b's dependencies with b.File, or rewrites it, and checks
// b.Forbidden on every platform.
func Check(t T, b Binary) {
	t.Helper()
	forbidden := maps.Clone(b.Forbidden)
	if forbidden == nil {
		forbidden = map[string]string{}
	}
	for _, p := range TestSupport {
		forbidden[p] = "test support"
	}
	// One error for each rule broken, naming the packages it caught, the
	// platforms, and how the first of them comes to be linked.
	type breach struct {
		deps, platforms []string
		chain           string
	}
	broken := map[string]*breach{}
	var order []string
	for _, platform := range Platforms {
		deps, err := list(b.Package, platform, "{{.ImportPath}}")
		if err != nil {
			t.Fatalf("%v", err)
		}
		for _, dep := range deps {
			r, ok := rule(forbidden, dep)
			if !ok {
				continue
			}
			br := broken[r]
			if br == nil {
				br = &breach{chain: importChain(b.Package, platform, dep)}
				broken[r] = br
				order = append(order, r)
			}
			if !slices.Contains(br.deps, dep) {
				br.deps = append(br.deps, dep)
			}
			if !slices.Contains(br.platforms, platform) {
				br.platforms = append(br.platforms, platform)
			}
		}
	}
	for _, r := range order {
		br := broken[r]
		t.Errorf("%s links %s (%s) on %s: %s", b.Package, strings.Join(br.deps, ", "), forbidden[r], strings.Join(br.platforms, ", "), br.chain)
	}
	got, err := Describe(b.Package)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if b.Update {
		if err := os.WriteFile(b.File, got, 0o644); err != nil {
			t.Fatalf("%v", err)
		}
		return
	}
	want, err := os.ReadFile(b.File)
	if err != nil {
		t.Fatalf("%v (write it with `go test -run %s -update`)", err, "TestDependencies")
	}
	if added, removed := diff(lines(want), lines(got)); len(added)+len(removed) > 0 {
		t.Errorf("%s links other packages than its %s lists:\n  now linked: %s\n  no longer linked: %s\n"+
			"if that is meant, rewrite the list with `go test .%s -run TestDependencies -update` and commit it",
			b.Package, b.File, orNone(added), orNone(removed), strings.TrimPrefix(b.Package, Module))
	}
}

// rule is the rule that forbids dep, if one does: its path, or a prefix
// ending in "/" that it starts with.
func rule(forbidden map[string]string, dep string) (string, bool) {
	for r := range forbidden {
		if dep == r || strings.HasSuffix(r, "/") && strings.HasPrefix(dep, r) {
			return r, true
		}
	}
	return "", false
}

func orNone(ls []string) string {
	if len(ls) == 0 {
		return "none"
	}
	return strings.Join(ls, ", ")
}

// Describe is the content of a depends.txt for pkg: this module's packages
// it links, then the other modules, one a line, sorted.
func Describe(pkg string) ([]byte, error) {
	deps, err := list(pkg, Pinned, "{{.ImportPath}} {{if .Module}}{{.Module.Path}}{{end}}")
	if err != nil {
		return nil, err
	}
	var ours, modules []string
	for _, d := range deps {
		path, module, _ := strings.Cut(d, " ")
		switch {
		case module == Module:
			ours = append(ours, path)
		case module != "" && !slices.Contains(modules, module):
			modules = append(modules, module)
		}
	}
	slices.Sort(ours)
	slices.Sort(modules)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# What %s links on %s: the packages of this module, then other modules.\n", pkg, Pinned)
	fmt.Fprintf(&b, "# Checked by TestDependencies; `go test -run TestDependencies -update` rewrites it.\n")
	for _, p := range ours {
		fmt.Fprintln(&b, p)
	}
	fmt.Fprintln(&b)
	for _, m := range modules {
		fmt.Fprintln(&b, m)
	}
	return b.Bytes(), nil
}

// list runs `go list -deps` for pkg on a platform ("GOOS/GOARCH") and
// returns its lines.
func list(pkg, platform, format string) ([]string, error) {
	goos, goarch, _ := strings.Cut(platform, "/")
	cmd := exec.Command("go", "list", "-deps", "-f", format, pkg)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s on %s: %w: %s", pkg, platform, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return lines(out), nil
}

// importChain is how pkg comes to import dep on a platform: the shortest
// chain of imports, "a → b → dep".
func importChain(pkg, platform, dep string) string {
	out, err := list(pkg, platform, "{{.ImportPath}} {{join .Imports \" \"}}")
	if err != nil {
		return err.Error()
	}
	imports := map[string][]string{}
	for _, l := range out {
		f := strings.Fields(l)
		imports[f[0]] = f[1:]
	}
	from := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == dep {
			chain := []string{p}
			for p = from[p]; p != ""; p = from[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return strings.Join(chain, " → ")
		}
		for _, next := range imports[p] {
			if _, seen := from[next]; !seen {
				from[next] = p
				queue = append(queue, next)
			}
		}
	}
	return "imported by no chain go list shows"
}

func lines(b []byte) []string {
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// diff lists the lines only in got (added) and only in want (removed),
// comments aside.
func diff(want, got []string) (added, removed []string) {
	keep := func(ls []string) map[string]bool {
		m := map[string]bool{}
		for _, l := range ls {
			if !strings.HasPrefix(l, "#") {
				m[l] = true
			}
		}
		return m
	}
	w, g := keep(want), keep(got)
	for l := range g {
		if !w[l] {
			added = append(added, l)
		}
	}
	for l := range w {
		if !g[l] {
			removed = append(removed, l)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}
