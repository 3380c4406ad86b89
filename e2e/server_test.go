//go:build linux

package e2e

import (
	"fmt"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// TestServerKilledMidBatch kills the project server with SIGKILL when about
// a third of a batch is validated, and starts it again on the same data
// directory and port. The volunteers reconnect by themselves, nothing
// validated before the crash is lost, and the batch completes with every
// work unit valid once and credited once.
func TestServerKilledMidBatch(t *testing.T) {
	p := newProject(t)
	p.mustCLI("app add", "primes", primesWasm)

	const units, width, quorum = 60, 100_000, 2
	spec, want := primesBatch("primes-crash", units, width, quorum)
	p.mustCLI("submit", "--spec", p.writeSpec(spec))
	for i := 1; i <= 3; i++ {
		p.startClient(fmt.Sprintf("vol%d", i))
	}

	before := p.waitStatus(90*time.Second, "a third of the batch to be valid", func(st wu.StatusReply) bool {
		b, _ := batchStatus(st, spec.Batch)
		return b.Valid >= units/3
	})
	validBefore := mustBatch(t, before, spec.Batch).Valid
	// Down for longer than a lease: the scheduler sees the gap in its log
	// and gives every task out at the crash a lease's time from the restart
	// for its host, still computing, to beat again; a host that does not
	// loses its task, and may report it late.
	p.restartServer(lease + beat)
	restarted := time.Now()
	after, err := p.status()
	if err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	b := mustBatch(t, after, spec.Batch)
	t.Logf("server killed with %d of %d work units seen valid; after the restart: %d valid, tasks %v", validBefore, units, b.Valid, b.Tasks)
	if b.Valid < validBefore {
		t.Errorf("the restarted server knows %d valid work units; %d were valid before the crash", b.Valid, validBefore)
	}
	if b.Done() {
		t.Fatalf("the batch was done before the server was killed: the test proves nothing; make the work units longer")
	}
	// The clients reconnect and ask for work at once, rather than at the
	// end of a back-off that grew while the server was down: work resumes
	// within a lease and a few seconds, not minutes.
	p.waitStatus(time.Minute, "a work unit validated after the restart", func(st wu.StatusReply) bool {
		r, _ := batchStatus(st, spec.Batch)
		return r.Valid > b.Valid
	})
	resumed := time.Since(restarted)
	t.Logf("work resumed %.1f s after the restart (lease %v)", resumed.Seconds(), lease)
	if resumed > lease+15*time.Second {
		t.Errorf("work resumed %v after the restart; want within a lease (%v) and a few seconds", resumed, lease)
	}

	st := p.waitBatchDone(spec.Batch, 2*time.Minute)
	t.Logf("batch done %.1f s after the restart", time.Since(restarted).Seconds())
	dir, manifest := p.results(spec.Batch)
	checkManifest(t, manifest, spec.Batch, units, quorum)
	checkPrimeResults(t, dir, want)

	b = mustBatch(t, st, spec.Batch)
	if b.Units != units || b.Valid != units || b.Errored != 0 {
		t.Errorf("batch status %+v; want all %d work units valid", b, units)
	}
	// A work unit is accepted once, when its quorum-th agreeing result
	// arrives, and that credits exactly quorum results. Nothing is credited
	// later: accepting cancels every replica still out, and the scheduler
	// refuses reports of cancelled tasks. A task whose lease ran out is
	// still one task: its former host's late report is taken while nobody
	// else holds it and refused once it went to another host.
	// Failures add replicas, not credit. Hence exactly units × quorum valid
	// results, however the crash fell.
	valid, invalid, lost := 0, 0, 0
	for _, h := range st.Hosts {
		t.Logf("host %s (%s): valid %d, invalid %d, lost %d", h.ID, h.Info.Name, h.Valid, h.Invalid, h.Lost)
		valid += h.Valid
		invalid += h.Invalid
		lost += h.Lost
	}
	if valid != units*quorum {
		t.Errorf("hosts hold %d valid results; want exactly %d (%d work units × quorum %d)", valid, units*quorum, units, quorum)
	}
	if b.Tasks[wu.TaskReported] < units*quorum || b.Tasks[wu.TaskUnsent]+b.Tasks[wu.TaskAssigned] != 0 {
		t.Errorf("tasks of the finished batch: %v; want at least %d reported and none still out", b.Tasks, units*quorum)
	}
	t.Logf("after the crash: %d results invalid, %d tasks lost, tasks %v", invalid, lost, b.Tasks)
}

func mustBatch(t *testing.T, st wu.StatusReply, name string) wu.BatchStatus {
	t.Helper()
	b, ok := batchStatus(st, name)
	if !ok {
		t.Fatalf("status lists no batch %s: %+v", name, st.Batches)
	}
	return b
}
