package sched

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The scheduler and the domain package must stay pure (DESIGN §2): what they
// compute depends only on the log they apply, so every member of a virtual
// peer reaches the same state and a snapshot replays anywhere.

// forbiddenDeps may not appear anywhere below the pure packages.
var forbiddenDeps = []string{"net", "github.com/nats-io/", "github.com/tetratelabs/wazero", "github.com/klauspost/compress"}

// forbiddenImports may not be imported by the pure packages themselves: file
// I/O, processes, the network, randomness, cancellation, locks (a machine is
// applied by one goroutine at a time: its caller owns concurrency), logging
// and cgo. (fmt and others reach os indirectly, which is harmless; the wall
// clock is checked call by call below.)
var forbiddenImports = []string{"os", "os/exec", "os/signal", "io/ioutil", "syscall", "math/rand", "math/rand/v2", "crypto/rand",
	"net", "net/http", "context", "sync", "sync/atomic", "log", "log/slog", "runtime", "unsafe", "C"}

// forbiddenCalls read the wall clock or wait on it.
var forbiddenCalls = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}

// module is this module's path: its packages below a pure one must be pure
// too.
const module = "github.com/momonga-project/momonga"

var purePackages = map[string]string{
	"github.com/momonga-project/momonga/workunits": "../../workunits",
	// The contract between a virtual peer and its machine: Entry,
	// StateMachine, Emitter.
	"github.com/momonga-project/momonga/vpeer/fsm":      "../../vpeer/fsm",
	"github.com/momonga-project/momonga/project/sched":  ".",
	"github.com/momonga-project/momonga/project/credit": "../credit",
	// The accounting virtual peer's state machine, fed by the scheduler.
	"github.com/momonga-project/momonga/project/accounting": "../accounting",
	// Sorted lists for the accounting peer's leaderboards.
	"github.com/momonga-project/momonga/project/internal/ordered": "../internal/ordered",
	// The binary snapshots' varints, floats and strings.
	"github.com/momonga-project/momonga/project/internal/snapcodec": "../internal/snapcodec",
}

func TestPurePackagesDependOnNothingImpure(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	for pkg := range purePackages {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, module+"/") || dep == module {
				if _, ok := purePackages[dep]; !ok {
					t.Errorf("%s depends on %s, a package of this module that is not pure", pkg, dep)
				}
			}
			for _, bad := range forbiddenDeps {
				if dep == bad || strings.HasPrefix(dep, bad) && (strings.HasSuffix(bad, "/") || strings.HasPrefix(dep, bad+"/")) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

func TestPurePackagesUseNoClockFilesOrRandomness(t *testing.T) {
	for pkg, dir := range purePackages {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no sources in %s (%v)", pkg, dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checkPureFile(t, f)
		}
	}
}

func checkPureFile(t *testing.T, path string) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	timeName := ""
	for _, imp := range file.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		for _, bad := range forbiddenImports {
			if p == bad {
				t.Errorf("%s imports %s", path, p)
			}
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" {
		return
	}
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName {
			for _, bad := range forbiddenCalls {
				if sel.Sel.Name == bad {
					t.Errorf("%s: time.%s reads the wall clock; take time from the log's ticks", fset.Position(sel.Pos()), bad)
				}
			}
		}
		return true
	})
}
