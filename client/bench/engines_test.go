package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/momonga-project/momonga/client/runner"
)

// TestEngines times one C kernel natively, under plain wazero and in a real
// worker process (built here, with wazero alone), and checks that every run
// computed the same checksum.
func TestEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker; skipped with -short")
	}
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang is not installed: the kernels are built natively with it (Debian: clang)")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the worker")
	}
	worker := filepath.Join(t.TempDir(), runner.WorkerExecutable)
	if out, err := exec.Command(goCmd, "build", "-o", worker, "../../cmd/momonga-worker").CombinedOutput(); err != nil {
		t.Fatalf("build the worker: %v\n%s", err, out)
	}
	rows, err := Engines(context.Background(), EnginesConfig{
		Worker: runner.Worker{Command: []string{worker, "worker"}}, Engines: []string{runner.EngineWazero},
		Kernels: []string{"int"}, Runs: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	t.Logf("%+v", r)
	if r.Workload != "kernels int" || r.NativeCPU <= 0 || r.PlainCPU <= 0 || r.WorkerCPU[runner.EngineWazero] <= 0 || r.Note != "" {
		t.Errorf("row %+v: want CPU times for every way", r)
	}
	if !r.Same {
		t.Error("the runs' outputs differ")
	}
}
