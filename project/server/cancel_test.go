package server

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestCancelThroughTheProject: `momonga-project cancel` as the admin client
// sends it: the units left undecided are cancelled, the running task is
// aborted at its host's next heartbeat, the valid unit keeps its result and
// its credit, and status and results say so.
func TestCancelThroughTheProject(t *testing.T) {
	srv, nc, adm := startServer(t)
	ctx := context.Background()
	if _, err := adm.AddApp(ctx, "primes", apps.Primes, signed(apps.Primes), wu.Policy{Replication: 1, Quorum: 1}); err != nil {
		t.Fatal(err)
	}
	var units []wu.UnitSpec
	for _, n := range []string{"a", "b", "c"} {
		units = append(units, wu.UnitSpec{Name: n, Args: []string{n}})
	}
	if _, err := adm.Submit(ctx, wu.Submit{Batch: "b", App: "primes", Units: units}); err != nil {
		t.Fatal(err)
	}
	out, err := adm.PutBlob(ctx, []byte("42\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := request(t, nc, wu.VolunteerSubject("h1", wu.OpHello), wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "h1", CPUs: 1}})); a.Error != nil {
		t.Fatal(a.Error)
	}
	msg, err := nc.Request(wu.VolunteerSubject("h1", wu.OpWork), wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 2}), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var work wu.WorkReply
	if err := json.Unmarshal(msg.Data, &work); err != nil || len(work.Assignments) != 2 {
		t.Fatalf("work: %s %v", msg.Data, err)
	}
	if a := request(t, nc, wu.VolunteerSubject("h1", wu.OpResult), wu.Encode(wu.Report{V: 1, Seq: 101, Task: work.Assignments[0].Task,
		Outcome: wu.OutcomeSuccess, Output: out, OutputSize: 3, CPUSeconds: 1})); a.Error != nil {
		t.Fatal(a.Error)
	}
	if _, err := adm.Cancel(ctx, "b", "nope"); err == nil {
		t.Fatal("cancel of a unit the batch does not have succeeded")
	}
	n, err := adm.Cancel(ctx, "b")
	if err != nil || n != 2 {
		t.Fatalf("cancelled %d, %v; want the 2 units not yet valid", n, err)
	}
	msg, err = nc.Request(wu.VolunteerSubject("h1", wu.OpBeat), wu.Encode(wu.Beat{V: 1, Seq: 102, Tasks: []wu.TaskProgress{{Task: work.Assignments[1].Task}}}), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var beat wu.BeatReply
	if err := json.Unmarshal(msg.Data, &beat); err != nil || len(beat.Abort) != 1 || beat.Abort[0] != work.Assignments[1].Task {
		t.Fatalf("beat after cancelling: %s %v", msg.Data, err)
	}
	st, err := adm.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Batches[0]; b.Valid != 1 || b.Cancelled != 2 || !b.Done() {
		t.Fatalf("status: %+v", b)
	}
	res, err := adm.Results(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]wu.WorkUnitState{}
	for _, u := range res.Units {
		states[u.Name] = u.State
	}
	if len(states) != 3 {
		t.Fatalf("results %+v", res.Units)
	}
	cancelled := 0
	for _, s := range states {
		if s == wu.WorkUnitCancelled {
			cancelled++
		}
	}
	if cancelled != 2 {
		t.Fatalf("results by unit %v; want 2 cancelled", states)
	}
	// The credit of the valid result stays granted.
	wait.For(t, 10*time.Second, "h1's credit for its valid result", func() bool {
		for _, h := range srv.Status().Hosts {
			if h.ID == "h1" && h.Credit > 0 {
				return true
			}
		}
		return false
	})
}
