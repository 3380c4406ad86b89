package chaos

import (
	"strings"
	"time"
)

// Report is what a chaos run found.
type Report struct {
	Members       int           `json:"members"`
	HalfLife      time.Duration `json:"half_life_ns"`
	Replace       time.Duration `json:"replace_ns"`
	Duration      time.Duration `json:"duration_ns"`
	Seed          uint64        `json:"seed"`
	Rate          float64       `json:"rate"`
	Volunteers    int           `json:"volunteers"`
	Timeout       time.Duration `json:"timeout_ns"`
	Gap           time.Duration `json:"gap_ns"`
	Heartbeat     time.Duration `json:"heartbeat_ns"`
	Lapse         time.Duration `json:"lapse_ns"`
	SnapshotEvery uint64        `json:"snapshot_every"`
	Units         int           `json:"units"` // work units queued

	// What the volunteers got during the run.
	Requests int            `json:"requests"` // sent
	Served   int            `json:"served"`   // answered without an error
	Errors   map[string]int `json:"errors"`   // by kind
	// Skipped counts requests due while every volunteer was waiting for
	// an answer: the load is closed-loop per volunteer.
	Skipped int           `json:"skipped"`
	P50     time.Duration `json:"p50_ns"` // of requests served
	P99     time.Duration `json:"p99_ns"`
	// Windows are the times longer than Gap in which no request was
	// served; Longest is the longest time without one, window or not.
	Windows   []Window      `json:"windows"`
	Longest   time.Duration `json:"longest_without_service_ns"`
	LongestAt time.Duration `json:"longest_without_service_at_ns"`

	// What happened to the members.
	Kills             int     `json:"kills"`
	KilledBeforeReady int     `json:"killed_before_ready"` // killed while still restoring or waiting for a slot
	LeaseHolderKills  int     `json:"lease_holder_kills"`  // killed while holding the lease: no ticks until it lapses
	Exits             int     `json:"exits"`               // processes that ended by themselves, during the run or after
	PlannedKills      int     `json:"planned_kills"`       // Plan's, for the seed
	ExpectedKills     float64 `json:"expected_kills"`      // members × duration × ln 2 / half-life
	// ExpectedPlannedKills allows for the time a position waits for its
	// replacement, when nothing is killed there.
	ExpectedPlannedKills float64 `json:"expected_planned_kills"`
	// Replacements counts the replacements that came to serve, during the
	// run or before the end state, each timed from the departure to the
	// replacement's member being ready; RestoredSnapshot counts those that
	// started from a snapshot.
	Replacements     int           `json:"replacements"`
	ReplaceMean      time.Duration `json:"replace_mean_ns"`
	ReplaceMax       time.Duration `json:"replace_max_ns"`
	RestoredSnapshot int           `json:"restored_snapshot"`
	Live             Liveness      `json:"live"`
	FewestLive       int           `json:"fewest_live"` // members serving, at the worst moment of the run

	// The reliability model (vpeer/reliability) with the same members and
	// half-life: the probability of losing the majority, and of having no
	// member live, within the duration, with τ = Replace and with τ = the
	// mean replacement measured.
	ModelLoseMajority         float64 `json:"model_lose_majority"`
	ModelNoneLive             float64 `json:"model_none_live"`
	ModelLoseMajorityMeasured float64 `json:"model_lose_majority_measured,omitempty"`
	ModelNoneLiveMeasured     float64 `json:"model_none_live_measured,omitempty"`
	ModelError                string  `json:"model_error,omitempty"`

	End    EndState `json:"end"`
	Events []Event  `json:"events"`
}

// report sums up the run as it ended; End and Events come later.
func (r *run) report(l *load) Report {
	cfg := r.cfg
	rep := Report{
		Members: cfg.Members, HalfLife: cfg.HalfLife, Replace: cfg.Replace, Duration: cfg.Duration, Seed: cfg.Seed,
		Rate: cfg.Rate, Volunteers: cfg.Volunteers, Timeout: cfg.Timeout, Gap: cfg.Gap,
		Heartbeat: cfg.Heartbeat, Lapse: cfg.Lapse, SnapshotEvery: cfg.SnapshotEvery, Units: l.units,
	}
	var successes []time.Duration
	rep.Requests, rep.Served, rep.Errors, successes, rep.P50, rep.P99 = l.summary(r.t0, cfg.Duration)
	l.mu.Lock()
	rep.Skipped = l.skipped
	l.mu.Unlock()
	rep.Windows = append([]Window{}, Windows(successes, 0, cfg.Duration, cfg.Gap)...)
	for _, w := range Windows(successes, 0, cfg.Duration, 0) {
		if w.Length > rep.Longest {
			rep.Longest, rep.LongestAt = w.Length, w.Start
		}
	}
	rep.PlannedKills = len(Plan(cfg.Seed, cfg.Members, cfg.HalfLife, cfg.Replace, cfg.Duration))
	rep.ExpectedKills = ExpectedKills(cfg.Members, cfg.HalfLife, cfg.Duration)
	rep.ExpectedPlannedKills = ExpectedPlannedKills(cfg.Members, cfg.HalfLife, cfg.Replace, cfg.Duration)
	return rep
}

// finish works out what the events say, and the model.
func (rep *Report) finish(r *run) {
	cfg := r.cfg
	for _, e := range rep.Events {
		switch e.Kind {
		case EventKill:
			rep.Kills++
			if strings.HasSuffix(e.Detail, leaseHolder) {
				rep.LeaseHolderKills++
			}
		case EventExit:
			rep.Exits++
		}
	}
	// A kill before ready: a kill of a process with no ready event.
	ready := map[[2]int]bool{}
	for _, e := range rep.Events {
		if e.Kind == EventReady {
			ready[[2]int{e.Position, e.Gen}] = true
		}
	}
	for _, e := range rep.Events {
		if e.Kind == EventKill && !ready[[2]int{e.Position, e.Gen}] {
			rep.KilledBeforeReady++
		}
	}
	rep.Live = Live(rep.Events, cfg.Members, cfg.Duration)
	rep.FewestLive = MinLive(rep.Events, 0, cfg.Duration)
	for i, w := range rep.Windows {
		rep.Windows[i].MinLive = MinLive(rep.Events, w.Start, w.Start+w.Length)
	}

	r.mu.Lock()
	replaced := append([]time.Duration(nil), r.replaced...)
	rep.RestoredSnapshot = r.restored
	r.mu.Unlock()
	rep.Replacements = len(replaced)
	var sum time.Duration
	for _, d := range replaced {
		sum += d
		rep.ReplaceMax = max(rep.ReplaceMax, d)
	}
	if len(replaced) > 0 {
		rep.ReplaceMean = sum / time.Duration(len(replaced))
	}

	tau := max(cfg.Replace, time.Millisecond) // the model needs a positive τ
	var err error
	rep.ModelLoseMajority, rep.ModelNoneLive, err = model(cfg.Members, cfg.HalfLife, tau, cfg.Duration)
	if err == nil && rep.ReplaceMean > 0 {
		rep.ModelLoseMajorityMeasured, rep.ModelNoneLiveMeasured, err = model(cfg.Members, cfg.HalfLife, rep.ReplaceMean, cfg.Duration)
	}
	if err != nil {
		rep.ModelError = err.Error()
	}
}
