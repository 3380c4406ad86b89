//go:build linux

package hostbench

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestRunMeasuresAFewHosts runs the bench on a real server with a few
// hosts: each is attached, connected through the callout and answered,
// then answered again after the server restarts.
func TestRunMeasuresAFewHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs momonga-project: skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "momonga-project")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/momonga-project/momonga/cmd/momonga-project").CombinedOutput(); err != nil {
		t.Fatalf("build momonga-project: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const hosts = 20
	rows, err := Run(ctx, Config{Servers: []Server{{Label: "test", Path: bin}}, Hosts: []int{hosts}, Concurrency: 8, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	t.Logf("%+v", r)
	if r.Failed != "" {
		t.Fatalf("the level failed: %s", r.Failed)
	}
	if r.Hosts != hosts || r.BaseMB <= 0 || r.ConnectedMB <= 0 || r.AfterStormMB <= 0 || r.ConnectPerSecond <= 0 {
		t.Errorf("row %+v: want the level's hosts, memory and a connect rate measured", r)
	}
	if r.Storm <= 0 || r.StormP50 > r.Storm || r.OthersWorst <= 0 {
		t.Errorf("storm %v (half of the hosts at %v, tools' worst %v): want every host answered again after the restart", r.Storm, r.StormP50, r.OthersWorst)
	}

	// The same hosts on two leaf-node servers of the core.
	rows, err = Run(ctx, Config{Servers: []Server{{Label: "test", Path: bin}}, Hosts: []int{hosts}, Concurrency: 8, Dir: t.TempDir(), Leaves: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Failed != "" {
		t.Fatalf("hosts on leaf nodes: %+v", rows)
	}
	r = rows[0]
	t.Logf("%+v", r)
	if r.Leaves != 2 || r.LeafBaseMB <= 0 || r.LeafConnectedMB <= 0 || r.ConnectPerSecond <= 0 {
		t.Errorf("row %+v: want the leaves' memory and a connect rate measured", r)
	}
}
