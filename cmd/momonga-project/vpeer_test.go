package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/vpeer"
)

// run runs the command line in process and returns what it printed.
func run(t *testing.T, args ...string) string {
	t.Helper()
	var out strings.Builder
	a := app()
	a.Writer = &out
	if err := a.Run(append([]string{"momonga-project"}, args...)); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

func TestVpeerStatusAndSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := server.Embedded(t.TempDir(), "127.0.0.1:0")
	cfg.Members, cfg.Heartbeat, cfg.Trust = 2, 50*time.Millisecond, server.Trust{Open: true}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	join := server.Joining(srv.ClientURL())
	join.Heartbeat = 50 * time.Millisecond
	spare, err := server.Start(ctx, join)
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()

	out := run(t, "vpeer", "snapshot", "--server", srv.ClientURL())
	if !strings.Contains(out, "stored; all 2 members agree") {
		t.Fatalf("vpeer snapshot printed:\n%s", out)
	}
	// The accounting peer runs beside the scheduler's, as many members.
	if out := run(t, "vpeer", "snapshot", "--group", server.AcctGroup, "--server", srv.ClientURL()); !strings.Contains(out, "stored; all 2 members agree") {
		t.Fatalf("vpeer snapshot --group acct printed:\n%s", out)
	}
	out = run(t, "vpeer", "status", "--server", srv.ClientURL())
	t.Logf("vpeer status:\n%s", out)
	for _, want := range []string{"virtual peer sched: 2 of 2 members", "virtual peer acct: 2 of 2 members", "all 2 members agree", "snapshot at ", "spare processes: " + spare.Group().Process() + " (1 free)", "holder"} {
		if !strings.Contains(out, want) {
			t.Errorf("vpeer status lacks %q:\n%s", want, out)
		}
	}
	var groups []vpeer.GroupSummary
	if err := json.Unmarshal([]byte(run(t, "vpeer", "status", "--json", "--server", srv.ClientURL())), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Group != server.AcctGroup || groups[1].Group != server.Group {
		t.Fatalf("vpeer status --json lists %d groups, want acct and sched: %+v", len(groups), groups)
	}
	for _, g := range groups {
		if len(g.Members) != 2 || !g.Agree || g.Lease == "" || len(g.Snapshots) == 0 {
			t.Fatalf("vpeer status --json, group %s: %+v", g.Group, g)
		}
	}
}
