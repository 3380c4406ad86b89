package main

import (
	"context"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/signing"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoCountsPrimesBelow1e8 runs the README's first command as a user
// would: the real binary, its embedded NATS, three volunteer clients with
// their worker processes, the whole batch.
func TestDemoCountsPrimesBelow1e8(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "momonga-project")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "--volunteers", "3", "--exit-when-done", "--http", "127.0.0.1:0", "--data", t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{"primes below 100000000: 5761455", "stats page: http://127.0.0.1:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"--help"}, {"serve", "--help"}, {"submit", "--help"}, {"vpeer", "--help"}, {"bench", "vpeer", "--help"}} {
		var out strings.Builder
		a := app()
		a.Writer = &out
		if err := a.Run(append([]string{"momonga-project"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out.Len() == 0 {
			t.Errorf("%v printed nothing", args)
		}
	}
}

func TestFlagsAfterArgumentsAreRead(t *testing.T) {
	// Each command line puts a flag after the arguments, as the usage lines
	// do; the flag must be read (here: the unreachable --server is dialled).
	keys := t.TempDir()
	if _, err := signing.Init(keys); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"app", "add", "primes", "../../apps/primes.wasm", "--server", "nats://127.0.0.1:1", "--key", filepath.Join(keys, signing.PrivateFile)},
		{"results", "b1", "--out", t.TempDir(), "--server", "nats://127.0.0.1:1"},
		{"submit", "--app", "primes", "--server", "nats://127.0.0.1:1", "--arg", "5"},
	} {
		a := app()
		var out strings.Builder
		a.Writer, a.ErrWriter = &out, &out
		err := a.Run(cliutil.Interspersed(a, append([]string{"momonga-project"}, args...)))
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
