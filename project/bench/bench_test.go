package bench

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	wu "github.com/momonga-project/momonga/workunits"
)

// TestLevelHandsOutEveryTaskOnce runs two levels on one server with exactly
// as many tasks queued as they ask for, and checks the counts against what
// the volunteers received, the scheduler's state and the raw stream; with
// one task and with several per request.
func TestLevelHandsOutEveryTaskOnce(t *testing.T) {
	for _, slots := range []int{1, 3} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) { testLevel(t, slots) })
	}
}

func testLevel(t *testing.T, slots int) {
	ctx := t.Context()
	const vols, reqs = 8, 15
	cfg := Config{Requests: reqs, Tasks: 1, Slots: slots}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	r, err := start(ctx, cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	total := 2 * vols * reqs * slots
	if err := r.queue(ctx, total); err != nil {
		t.Fatal(err)
	}

	for _, tr := range []Transport{TCP, InProcess} {
		row, err := r.level(ctx, tr, vols)
		if err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		for name, m := range map[string]Measurement{"dispatch": row.Dispatch, "raw publish": row.RawPublish, "echo": row.Echo} {
			if m.Requests != vols*reqs || m.PerSecond <= 0 || m.Seconds <= 0 || m.P50 <= 0 || m.P50 > m.P99 || m.P99 > requestTimeout {
				t.Errorf("%s %s: %+v, want %d requests at a positive rate, 0 < p50 <= p99", tr, name, m, vols*reqs)
			}
		}
		if row.Assignments != vols*reqs*slots || math.Abs(row.AssignmentsPerSecond-row.Dispatch.PerSecond*float64(slots)) > 1e-6*row.AssignmentsPerSecond {
			t.Errorf("%s: %d assignments, %g/s at %g requests/s; want %d", tr, row.Assignments, row.AssignmentsPerSecond, row.Dispatch.PerSecond, vols*reqs*slots)
		}
		if want := row.AssignmentsPerSecond / row.RawPublish.PerSecond; math.Abs(row.Ratio-want) > 1e-9 {
			t.Errorf("%s: ratio %g, want %g", tr, row.Ratio, want)
		}
		if want := row.Echo.PerSecond / row.RawPublish.PerSecond; math.Abs(row.EchoRatio-want) > 1e-9 {
			t.Errorf("%s: echo ratio %g, want %g", tr, row.EchoRatio, want)
		}
	}

	// Every volunteer got what it asked for, and no task went out twice:
	// together they hold exactly the tasks queued.
	holder := map[string]string{}
	for host, tasks := range r.received {
		if len(tasks) != reqs*slots {
			t.Errorf("%s received %d tasks, want %d", host, len(tasks), reqs*slots)
		}
		for _, task := range tasks {
			if other, dup := holder[task]; dup {
				t.Errorf("task %s went to %s and to %s", task, other, host)
			}
			holder[task] = host
		}
	}
	if len(r.received) != 2*vols || len(holder) != total {
		t.Fatalf("%d volunteers received %d distinct tasks, want %d and %d", len(r.received), len(holder), 2*vols, total)
	}

	// The scheduler agrees, host by host, and has nothing left to give.
	st := r.srv.Status()
	for _, h := range st.Hosts {
		if got := len(r.received[h.ID]); h.Running != got {
			t.Errorf("scheduler: %s runs %d tasks, the volunteer received %d", h.ID, h.Running, got)
		}
	}
	byState := map[wu.TaskState]int{}
	for _, b := range st.Batches {
		for s, n := range b.Tasks {
			byState[s] += n
		}
	}
	if byState[wu.TaskAssigned] != total || byState[wu.TaskUnsent] != 0 {
		t.Errorf("scheduler: tasks by state %v, want %d assigned and none unsent", byState, total)
	}
	if _, err := r.level(ctx, TCP, 1); !errors.Is(err, errQueueEmpty) {
		t.Errorf("a level on an empty queue: %v, want %v", err, errQueueEmpty)
	}

	// Every raw publish was stored once.
	js, err := jetstream.New(r.nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, rawStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != uint64(2*vols*reqs) {
		t.Errorf("raw stream: %+v, %v; want %d messages", info.State, err, 2*vols*reqs)
	}

	if err := r.check(); err != nil {
		t.Errorf("check: %v", err)
	}
	// check notices a task handed out twice.
	a, b := "vol-tcp-8-0", "vol-in-process-8-7"
	r.received[b] = append(r.received[b], r.received[a][0])
	if err := r.check(); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("check with a task in two volunteers' hands: %v", err)
	}
}

func TestDispatch(t *testing.T) {
	const d = 150 * time.Millisecond
	rep, err := Dispatch(t.Context(), Config{
		Volunteers: []int{1, 4},
		Transports: []Transport{TCP},
		Duration:   d,
		Tasks:      20_000,
		DataDir:    t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || rep.CPUs < 1 {
		t.Fatalf("report %+v, want two rows", rep)
	}
	_, cpuKnown := ProcessCPU()
	for i, row := range rep.Rows {
		if row.Volunteers != []int{1, 4}[i] || row.Transport != TCP || row.Queued != 20_000 {
			t.Errorf("row %d: %+v", i, row)
		}
		for name, m := range map[string]Measurement{"dispatch": row.Dispatch, "raw publish": row.RawPublish, "echo": row.Echo} {
			// Each of the rounds runs for its share of d, and longer by the
			// requests still in flight when it ends.
			if m.Requests < row.Volunteers || m.Seconds < d.Seconds() || m.Seconds > d.Seconds()+2*rounds*requestTimeout.Seconds() ||
				m.PerSecond <= 0 || m.P50 <= 0 || m.P50 > m.P99 || cpuKnown && m.CPUPerRequest <= 0 {
				t.Errorf("row %d %s: %+v", i, name, m)
			}
		}
		if row.Ratio <= 0 || row.EchoRatio <= 0 {
			t.Errorf("row %d: ratio %g, echo ratio %g", i, row.Ratio, row.EchoRatio)
		}
	}
}

func TestDispatchRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Volunteers: []int{0}},
		{Transports: []Transport{"carrier-pigeon"}},
		{Requests: -1},
	} {
		if _, err := Dispatch(t.Context(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
