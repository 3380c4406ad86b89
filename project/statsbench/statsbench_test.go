package statsbench

import (
	"context"
	"testing"
)

// TestSmallPopulation runs the benchmark on a few hundred hosts: every
// page answers, and the export lists every account with credit.
func TestSmallPopulation(t *testing.T) {
	rep, err := Run(context.Background(), Config{Hosts: 600, Users: 100, Teams: 10, Requests: 5, Days: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pages) != 10 {
		t.Fatalf("%d pages measured", len(rep.Pages))
	}
	for _, p := range rep.Pages {
		if p.P50 <= 0 || p.P99 < p.P50 || p.Bytes == 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	// Every host was credited once at least, and every user has a host.
	if rep.Exported.Hosts != 600 || rep.Exported.Users != 100 || rep.ExportFiles["host.gz"] == 0 {
		t.Fatalf("export: %+v, files %v", rep.Exported, rep.ExportFiles)
	}
	if rep.AcctSnapshot == 0 || rep.LargestTeam == 0 || rep.MostHosts < 600/100 {
		t.Fatalf("snapshot %d bytes, largest team %d, most hosts of a user %d", rep.AcctSnapshot, rep.LargestTeam, rep.MostHosts)
	}
}
