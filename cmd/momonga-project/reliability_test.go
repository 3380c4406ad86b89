package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/vpeer/reliability"
)

func runReliability(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "momonga-project", Writer: &out, ErrWriter: &out,
		Commands: []*cli.Command{{Name: "vpeer", Subcommands: []*cli.Command{reliabilityCommand()}}}}
	err := app.Run(append([]string{"momonga-project", "vpeer", "reliability"}, args...))
	return out.String(), err
}

func TestReliabilityCommand(t *testing.T) {
	out, err := runReliability(t, "--members", "1,3,5,7,9", "--half-life", "1h", "--replace", "60s", "--hours", "24",
		"--trials", "2000", "--mttf-events", "200000")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.336155", "0.940152", "0.996748", "0.999834", "Smallest group with R(24h) ≥ 0.99: 7 members"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = runReliability(t, "--members", "7", "--replace", "300s", "--trials", "0", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep reliability.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].R < 0.7575 || rep.Rows[0].R > 0.7585 || rep.Rows[0].SimulatedR != nil || rep.SmallestMembers != 13 {
		t.Errorf("--replace 300s --json: %s", out)
	}
	for _, c := range []struct{ args, want string }{
		{"--members 0", "members must be between 1 and"},
		{"--half-life 0s", "half-life must be positive"},
		{"--replace -1s", "replacement time must be positive"},
		{"--hours -1", "--hours must be a positive number"},
		{"--trials -1", "--trials must be 0"},
		{"--target 1", "target must be a probability"},
		{"3", "member counts go in --members"},
	} {
		if _, err := runReliability(t, strings.Fields(c.args)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}
