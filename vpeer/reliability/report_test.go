package reliability

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func musasabi(members ...int) ReportConfig {
	return ReportConfig{Members: members, HalfLife: time.Hour, Replace: time.Minute, Hours: 24, Target: 0.99}
}

func TestReportChainRowsAndSmallestGroup(t *testing.T) {
	rep, err := NewReport(musasabi(3, 5, 7))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		members, majority int
		r, mttf           float64
	}{{3, 2, 0.336155, 22.0}, {5, 3, 0.940152, 388}, {7, 4, 0.996748, 7358}}
	if len(rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rep.Rows), len(want))
	}
	for i, w := range want {
		row := rep.Rows[i]
		if row.Members != w.members || row.Majority != w.majority || relErr(row.R, w.r) > 1e-5 || relErr(row.MTTFHours, w.mttf) > 0.01 {
			t.Errorf("row %d: %+v, want %+v", i, row, w)
		}
		if row.SimulatedR != nil || row.SimulatedMTTF != nil {
			t.Errorf("row %d simulated with no trials", i)
		}
	}
	if rep.SmallestMembers != 7 || relErr(rep.SmallestR, 0.996748) > 1e-5 || rep.SearchLimit != SearchLimit {
		t.Errorf("smallest group %d (R %g), want 7", rep.SmallestMembers, rep.SmallestR)
	}
	if relErr(rep.DepartureRatePerHour, 0.6931) > 1e-4 || rep.ReplaceSeconds != 60 || rep.HalfLifeHours != 1 {
		t.Errorf("parameters %+v", rep)
	}

	var out strings.Builder
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"members  majority  R(24h) chain  MTTF chain",
		"5        3         0.940152      388.",
		"Smallest group with R(24h) ≥ 0.99: 7 members (R(24h) = 0.996748).",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("printed report lacks %q:\n%s", line, out.String())
		}
	}
	if strings.Contains(out.String(), "simulated") {
		t.Errorf("a report with no trials prints simulated columns:\n%s", out.String())
	}
}

// TestReportSimulationIsSeeded: the simulated columns agree with the chain
// and depend on the seed alone, not on which other rows are asked for.
func TestReportSimulationIsSeeded(t *testing.T) {
	cfg := musasabi(3, 5)
	cfg.Trials, cfg.MTTFEvents, cfg.Seed = 2000, 200_000, 7
	a, err := NewReport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range a.Rows {
		s := row.SimulatedR
		if s == nil || row.SimulatedMTTF == nil || s.Trials != 2000 {
			t.Fatalf("row %d not simulated: %+v", row.Members, row)
		}
		if dev := (s.R - row.R) / s.StdErr; dev > 4 || dev < -4 {
			t.Errorf("%d members: simulated R %g ± %g, chain %g", row.Members, s.R, s.StdErr, row.R)
		}
	}
	cfg.Members = []int{5}
	b, err := NewReport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Rows[1], b.Rows[0]) {
		t.Errorf("the row of 5 members changed with the rows beside it:\n%+v\n%+v", *a.Rows[1].SimulatedR, *b.Rows[0].SimulatedR)
	}
	var out strings.Builder
	if err := a.Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "R(24h) simulated") || !strings.Contains(out.String(), "seed 7") {
		t.Errorf("printed report lacks the simulated columns:\n%s", out.String())
	}
}

func TestReportUnreachableTarget(t *testing.T) {
	cfg := musasabi(3)
	cfg.Replace, cfg.Target = 30*time.Minute, 0.999999
	rep, err := NewReport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	if rep.SmallestMembers != 0 || !strings.Contains(out.String(), "No group of up to 101 members reaches R(24h) ≥ 0.999999: replace members faster.") {
		t.Errorf("smallest %d:\n%s", rep.SmallestMembers, out.String())
	}
}

func TestReportRefusesWhatItCannotCompute(t *testing.T) {
	for _, c := range []struct {
		change func(*ReportConfig)
		want   string
	}{
		{func(c *ReportConfig) { c.Members = nil }, "no group size"},
		{func(c *ReportConfig) { c.Members = []int{0} }, "0 members: invalid reliability parameters: members must be between 1 and"},
		{func(c *ReportConfig) { c.HalfLife = 0 }, "half-life must be positive"},
		{func(c *ReportConfig) { c.Hours = -1 }, "horizon must be a positive number of hours"},
		{func(c *ReportConfig) { c.Hours = 1e300 }, "horizon must be a positive number of hours"},
		{func(c *ReportConfig) { c.Trials = -1 }, "trials must be 0"},
		{func(c *ReportConfig) { c.Target = 1 }, "target must be a probability"},
	} {
		cfg := musasabi(3)
		c.change(&cfg)
		if _, err := NewReport(cfg); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", cfg, err, c.want)
		}
	}
}
