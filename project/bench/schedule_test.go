package bench

import (
	"testing"
)

// TestScheduleCapabilityBeatsFirstComeFirstServed runs the scheduling
// simulation on a small population: capability-aware scheduling must
// finish sooner, keep the slowest units' turnaround shorter and miss fewer
// deadlines than first come first served, and every unit is decided.
func TestScheduleCapabilityBeatsFirstComeFirstServed(t *testing.T) {
	rows, err := Schedule(t.Context(), ScheduleConfig{Hosts: 300, Units: 3000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	fcfs, capable := rows[0], rows[1]
	for _, r := range rows {
		t.Logf("%+v", r)
		if r.Valid+r.Failed != r.Units || r.Assignments < r.Units {
			t.Errorf("%s: %d valid and %d failed of %d units after %d assignments", r.Policy, r.Valid, r.Failed, r.Units, r.Assignments)
		}
	}
	if capable.Makespan >= fcfs.Makespan || capable.P99Turnaround >= fcfs.P99Turnaround || capable.MissedDeadlines >= fcfs.MissedDeadlines {
		t.Errorf("capability-aware %v / p99 %v / %d missed; first come first served %v / p99 %v / %d missed",
			capable.Makespan, capable.P99Turnaround, capable.MissedDeadlines, fcfs.Makespan, fcfs.P99Turnaround, fcfs.MissedDeadlines)
	}
}
