package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestBenchmarkRightAfterStartWaits: the benchmarks a client runs as it
// starts are waited for by whoever asks for them meanwhile (`momonga
// benchmark`, the page), who gets their figures rather than an error.
func TestBenchmarkRightAfterStartWaits(t *testing.T) {
	release := make(chan struct{})
	runs := make(chan struct{}, 10)
	d := runDaemon(t, Config{Monitor: &fakeObserver{}, Control: "off", Benchmark: func(ctx context.Context) (host.Benchmarks, error) {
		runs <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return host.Benchmarks{}, ctx.Err()
		}
		return host.Benchmarks{FLOPS: 7e9, Seconds: 1}, nil
	}})
	<-runs // the start-up run is under way
	wait.For(t, 10*time.Second, "the status to say so", func() bool { return d.Status().Benchmarking })
	got := make(chan host.Benchmarks, 2)
	for range 2 {
		go func() {
			b, err := d.Benchmark(context.Background())
			if err != nil {
				t.Errorf("benchmark while the start-up run goes on: %v", err)
			}
			got <- b
		}()
	}
	wait.For(t, 10*time.Second, "both callers waiting for the run", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.benchRun != nil && d.benchRun.waiting == 2
	})
	close(release)
	for range 2 {
		if b := <-got; b.FLOPS != 7e9 {
			t.Errorf("figures %+v, want the start-up run's", b)
		}
	}
	if len(runs) != 0 {
		t.Errorf("%d more runs of the benchmarks, want none", len(runs))
	}
	if d.Status().Benchmarking {
		t.Error("still benchmarking")
	}
	// The event log has what happened, in the data directory.
	entries, err := eventlog.Read(d.cfg.DataDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range entries {
		msgs = append(msgs, e.Message)
	}
	if s := strings.Join(msgs, "|"); !strings.Contains(s, "benchmarks started|benchmarks") {
		t.Errorf("event log: %s", s)
	}
}

// TestCreditFromTheProject: the project's count of the host's credit
// reaches the client's projects list, asked only when the list is read
// and at most once a minute (on the daemon's clock).
func TestCreditFromTheProject(t *testing.T) {
	proj := startProject(t)
	clock := newTestClock()
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: &fakeObserver{}, Prefs: quickPrefs(), Control: "off", Now: clock.Now})
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"out", "x"})
	wait.For(t, 20*time.Second, "the batch done", func() bool { return proj.batch(t, "b").Done() })
	wait.For(t, 20*time.Second, "the credit granted, as the project counts it", func() bool {
		if c := d.Projects()[0].Credit; c != nil && c.HostCredit > 0 {
			if c.User != "" || c.UserCredit != 0 {
				t.Errorf("an open project's host has no user: %+v", c)
			}
			return true
		}
		// The figures are asked again once they are a minute old.
		clock.Advance(creditFresh)
		return false
	})
}
