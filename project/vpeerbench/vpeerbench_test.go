package vpeerbench

import (
	"context"
	"testing"
	"time"
)

// TestRunSmall runs the whole bench on small sizes: every row measured, R3
// on a cluster of three servers in the test's process, and the restore rows restoring the snapshot they stored.
func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{Members: []int{1, 2}, Entries: 300, Units: []int{2000}, Replay: 200, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Apply) != 4 || len(rep.Restore) != 1 {
		t.Fatalf("report %+v", rep)
	}
	for i, r := range rep.Apply {
		if log := []string{"R1", "R3"}[i/2]; r.Log != log || !r.Measured || r.Applied <= 0 || r.Raw <= 0 || r.Ratio <= 0 {
			t.Errorf("apply row %+v, want it measured on %s", r, log)
		}
	}
	if r := rep.Restore[0]; r.Units != 2000 || r.Tasks != 4000 || r.SnapshotBytes <= 0 || r.Restore <= 0 || r.RestoreReplay <= 0 || r.Replayed != 200 {
		t.Errorf("restore row %+v", r)
	}
}
