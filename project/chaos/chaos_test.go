package chaos

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer/vpeertest"
)

// memberEnv makes the test binary a member process of the chaos run that
// started it.
const memberEnv = "MOMONGA_CHAOS_TEST_MEMBER"

func TestMain(m *testing.M) {
	if os.Getenv(memberEnv) == "1" {
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		if err := MemberMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout, logger); err != nil {
			logger.Error("member process", "err", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testMember(args []string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), memberEnv+"=1")
	return cmd
}

// TestChaosRun is a short real chaos run: three member processes killed
// with SIGKILL on the seed's schedule and replaced, volunteers sending
// requests throughout. Requests must be served, every planned kill done
// and followed by a replacement, the members' state hashes equal at the
// end, and every request applied exactly once.
func TestChaosRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs member processes for 15 s; skipped with -short")
	}
	const seed = 2
	halfLife, replace, duration := 5*time.Second, time.Second, 15*time.Second
	planned := Plan(seed, 3, halfLife, replace, duration)
	if len(planned) < 3 {
		t.Fatalf("seed %d plans %d kills; choose a seed that kills more", seed, len(planned))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rep, err := Run(ctx, Config{
		Members: 3, HalfLife: halfLife, Replace: replace, Duration: duration, Seed: seed,
		Rate: 40, Volunteers: 10, Timeout: 2 * time.Second,
		// Snapshots often, so that replacements restore one.
		SnapshotEvery: 100,
		MemberCommand: testMember,
		DataDir:       dir,
		Logger:        vpeertest.TestLogger(t),
		Progress:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Events {
		t.Logf("%8.2fs  position %d  process %d  %-5s %s %s", e.At.Seconds(), e.Position, e.Gen, e.Kind, e.Member, e.Detail)
	}
	t.Logf("%d requests, %d served, errors %v, windows %v; %d kills, %d replacements (%d from a snapshot), mean %s; end %+v",
		rep.Requests, rep.Served, rep.Errors, rep.Windows, rep.Kills, rep.Replacements, rep.RestoredSnapshot, rep.ReplaceMean, rep.End)
	if rep.Served < rep.Requests/2 {
		t.Errorf("%d of %d requests served", rep.Served, rep.Requests)
	}
	if rep.Kills != len(planned) || rep.Kills != rep.PlannedKills {
		t.Errorf("%d kills, the seed's schedule has %d", rep.Kills, len(planned))
	}
	if rep.Replacements < rep.Kills {
		t.Errorf("%d replacements served after %d kills", rep.Replacements, rep.Kills)
	}
	if rep.RestoredSnapshot == 0 {
		t.Error("no replacement restored a snapshot")
	}
	end := rep.End
	if len(end.Errors) > 0 {
		t.Errorf("end of the run: %s", strings.Join(end.Errors, "; "))
	}
	if end.Members != 3 || !end.Agree || len(end.Hashes) != 3 {
		t.Errorf("at the end %d members, hashes %v, agree %v", end.Members, end.Hashes, end.Agree)
	}
	if !end.AcctAgree || len(end.AcctHashes) != 3 {
		t.Errorf("at the end the accounting peer's hashes %v, agree %v", end.AcctHashes, end.AcctAgree)
	}
	if end.Outputs == 0 || end.AcctThrough != end.Outputs || end.AcctResults != end.StateValid {
		t.Errorf("the scheduler made %d grants for %d valid units; the accounting peer applied %d and counted %d results", end.Outputs, end.StateValid, end.AcctThrough, end.AcctResults)
	}
	if !end.AuditAgrees {
		t.Errorf("the fresh replica's hash %q does not match the members' %v", end.AuditHash, end.Hashes)
	}
	if !end.ExactlyOnce || end.Acked == 0 {
		t.Errorf("exactly once: %v (%d acknowledged, duplicates %v, refused %v, mismatches %v)", end.ExactlyOnce, end.Acked, end.Duplicates, end.Refused, end.Mismatches)
	}
	if t.Failed() {
		logs, _ := os.ReadDir(dir + "/members")
		for _, l := range logs {
			b, _ := os.ReadFile(dir + "/members/" + l.Name())
			t.Logf("member log %s:\n%s", l.Name(), b)
		}
	}
}

func TestConfigRefusesBadInput(t *testing.T) {
	good := Config{Members: 3, HalfLife: time.Second, Duration: time.Second, Rate: 1, Volunteers: 1, Timeout: time.Second, Gap: time.Second,
		Heartbeat: time.Second, Lapse: 2 * time.Second, Tick: time.Second, MemberCommand: testMember}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Members = 0 }, "--members must be between 1 and 15"},
		{func(c *Config) { c.HalfLife = 0 }, "--half-life must be positive"},
		{func(c *Config) { c.Replace = -time.Second }, "--replace must not be negative"},
		{func(c *Config) { c.Duration = 0 }, "--duration must be positive"},
		{func(c *Config) { c.Rate = -1 }, "--rate must be above 0"},
		{func(c *Config) { c.Volunteers = 0 }, "--volunteers must be between"},
		{func(c *Config) { c.Lapse = c.Heartbeat }, "--lapse (1s) must be longer than --heartbeat (1s)"},
		{func(c *Config) { c.MemberCommand = nil }, "no command to start member processes"},
	} {
		cfg := good
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
}
