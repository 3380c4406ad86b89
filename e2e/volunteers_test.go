//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/e2e/netlab"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	wu "github.com/momonga-project/momonga/workunits"
)

// These tests cut real volunteers (momonga attach, momonga run), each on a
// host of its own, off from their project, and slow their links down.

// taskEvent is what a volunteer's record in the log says of one task.
type taskEvent struct {
	host   string
	op     string // wu.OpBeat, wu.OpCkpt, wu.OpResult
	cpu    float64
	stored time.Time
}

// taskEvents reads, from the log, what volunteers said of each task.
func taskEvents(recs []logRecord) map[string][]taskEvent {
	evs := map[string][]taskEvent{}
	for _, r := range recs {
		c := r.cmd
		switch c.Op {
		case wu.OpBeat:
			var b wu.Beat
			if json.Unmarshal(c.Body, &b) == nil {
				for _, p := range b.Tasks {
					evs[p.Task] = append(evs[p.Task], taskEvent{c.Host, c.Op, p.CPUSeconds, r.stored})
				}
			}
		case wu.OpCkpt:
			var k wu.CheckpointReport
			if json.Unmarshal(c.Body, &k) == nil {
				evs[k.Task] = append(evs[k.Task], taskEvent{c.Host, c.Op, k.Checkpoint.CPUSeconds, r.stored})
			}
		case wu.OpResult:
			var rep wu.Report
			if json.Unmarshal(c.Body, &rep) == nil {
				evs[rep.Task] = append(evs[rep.Task], taskEvent{c.Host, c.Op, rep.CPUSeconds, r.stored})
			}
		}
	}
	return evs
}

// workLost is the CPU time volunteers spent on work that was done again
// in tasks: for each task, every host that held it before its last holder computed
// up to the most CPU time it reported, and its successor resumed from the
// newest checkpoint stored before the successor's first word of the task;
// what lies between was computed twice. (A task's CPU time carries on
// across hosts in its checkpoints.)
func workLost(recs []logRecord, tasks ...string) float64 {
	lost, _ := handovers(recs, tasks...)
	return lost
}

// handovers is workLost with a line for each task that changed hands.
func handovers(recs []logRecord, tasks ...string) (float64, []string) {
	lost := 0.0
	var lines []string
	all := taskEvents(recs)
	for _, task := range tasks {
		evs := all[task]
		var holders []string
		first := map[string]time.Time{}
		for _, e := range evs {
			if _, ok := first[e.host]; !ok {
				first[e.host] = e.stored
				holders = append(holders, e.host)
			}
		}
		for i, h := range holders[:max(len(holders)-1, 0)] {
			next := first[holders[i+1]]
			computed, resumed := 0.0, 0.0
			for _, e := range evs {
				if e.host == h {
					computed = max(computed, e.cpu)
				}
				if e.op == wu.OpCkpt && e.stored.Before(next) {
					resumed = max(resumed, e.cpu)
				}
			}
			lost += max(computed-resumed, 0)
			lines = append(lines, fmt.Sprintf("task %s: %s computed to %.2f s of CPU, %s resumed from %.2f s", task, h, computed, holders[i+1], resumed))
		}
	}
	return lost, lines
}

// volunteerTimes are the times volunteers' requests (records of a host
// in hosts; of any volunteer when hosts is nil) reached the log, in order:
// each is answered as soon as a member applies it.
func volunteerTimes(recs []logRecord, hosts []string) []time.Time {
	var times []time.Time
	for _, r := range recs {
		h := r.cmd.Host
		if r.cmd.Op != "" && h != "" && !strings.HasPrefix(h, "adm:") && (hosts == nil || slices.Contains(hosts, h)) {
			times = append(times, r.stored)
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	return times
}

// longestSilence is the longest time within [from, to] in which no
// volunteer's request reached the log; to is brought back to the last
// request, so that the end of the work is not taken for an outage.
func longestSilence(times []time.Time, from, to time.Time) time.Duration {
	if len(times) > 0 && times[len(times)-1].Before(to) {
		to = times[len(times)-1]
	}
	prev, gap := from, time.Duration(0)
	for _, t := range times {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		gap, prev = max(gap, t.Sub(prev)), t
	}
	return max(gap, to.Sub(prev))
}

// firstAfter is the first of times after at, or the zero time.
func firstAfter(times []time.Time, at time.Time) time.Time {
	i, _ := slices.BinarySearchFunc(times, at, func(t, at time.Time) int {
		if t.After(at) {
			return 1
		}
		return -1
	})
	if i == len(times) {
		return time.Time{}
	}
	return times[i]
}

// hostIDs maps the hosts' names to their ids, from the project's status.
func hostIDs(st wu.StatusReply) map[string]string {
	ids := map[string]string{}
	for _, h := range st.Hosts {
		ids[h.Info.Name] = h.ID
	}
	return ids
}

// mandelrTile is mandelr's deep tile made smaller: a few seconds of CPU
// under wazero, in a few hundred rows, so that it checkpoints often.
var mandelrTile = []string{"-0.743643887037158704752191506114774", "0.131825904205311970493132056385139", "2e-11", "480", "360", "20000"}

// mandelrWide is a wide tile of 3 million pixels, half of them in the set:
// its checkpoints take several chunks to upload, its image
// (wideImageBytes) more still. Its 1.9·10^9 iterations run long enough
// (about 20 s under wazero on a machine of 8·10^8 flops) for a
// checkpoint's first chunk to cross a home link (4 s) before the task
// ends: a checkpoint still uploading when its task finishes is dropped,
// the result goes instead. (A shallow tile of 2.6·10^8 iterations, 3 s on
// such a machine, never had a checkpoint uploaded.)
var mandelrWide = []string{"-0.75", "0.1", "0.05", "2048", "1536", "1200"}

const wideImageBytes = int64(2048*1536 + len("P5\n2048 1536\n255\n"))

// submitMandelr submits units of mandelr's tile args, checkpointed every
// interval, and returns their tasks.
func submitMandelr(t *testing.T, adm *admin.Client, batch string, units int, args []string, interval time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// The units are the same computation: NoShare has each computed, as
	// the tests follow each one's task.
	sub := wu.Submit{Batch: batch, App: "mandelr", Replication: 1, Quorum: 1, DeadlineSeconds: 3600, CheckpointSeconds: interval.Seconds(),
		Limits: wu.Limits{MemoryBytes: 64 << 20, OutputBytes: 4 << 20, MaxSeconds: 1800}, NoShare: true}
	for i := range units {
		sub.Units = append(sub.Units, wu.UnitSpec{Name: fmt.Sprintf("tile%d", i), Args: args})
	}
	ids, err := adm.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, id := range ids {
		tasks = append(tasks, id+"_0")
	}
	return tasks
}

// waitCheckpoint waits until host has shipped a checkpoint of task with at
// least the given CPU time.
func waitCheckpoint(t *testing.T, js jetstream.JetStream, host, task string, cpu float64) {
	t.Helper()
	wait.For(t, 3*time.Minute, fmt.Sprintf("a checkpoint of %s by %s", task, host), func() bool {
		recs, err := tryReadLog(js)
		if err != nil {
			return false
		}
		for _, e := range taskEvents(recs)[task] {
			if e.host == host && e.op == wu.OpCkpt && e.cpu >= cpu {
				return true
			}
		}
		return false
	})
}

// TestVolunteerCutOffPastItsLease cuts a real volunteer computing a long,
// checkpointing task off from its project for longer than its lease, and
// heals it: first with no other volunteer to take the task (its late
// result is used), then with another that takes the task meanwhile,
// resuming from the cut-off one's checkpoint (the cut-off one's result, or
// its work, is dropped: no task is done twice, no result credited twice).
func TestVolunteerCutOffPastItsLease(t *testing.T) {
	t.Parallel() // on a lab of its own, as every test of a lab (checkNoWorkersIn)
	c := newLabCluster(t, projectBin, 1, "--lease", lease.String(), "--beat", beat.String())
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	c.mustCLI("app add", "mandelr", mandelrWasm)
	adm, err := admin.Dial(ctx, c.url, c.toolOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	js, err := jetstream.New(c.connect())
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.lab.Node("v1"), c.lab.Node("v2")
	c.startClientIn("v1", n1.Command, c.url)

	// Alone: the task comes back to the queue while v1 is cut off, nobody
	// takes it, and v1 keeps it when it is back.
	alone := submitMandelr(t, adm, "alone", 1, mandelrTile, time.Second)[0]
	var ids map[string]string
	wait.For(t, time.Minute, "v1 to say hello", func() bool {
		st, err := adm.Status(ctx)
		ids = hostIDs(st)
		return err == nil && ids["v1"] != ""
	})
	v1 := ids["v1"]
	waitCheckpoint(t, js, v1, alone, 0.3)
	numbers := []faultNumbers{cutVolunteer(t, c, adm, js, alone, n1, v1, nil)}
	st := c.waitBatchDone("alone", 3*time.Minute)
	if h, _ := hostStatus(st, "v1"); h.Valid != 1 || h.Lost != 1 {
		t.Errorf("v1 after its late result: %d valid, %d lost; want its one task lost while it was cut off, then its result used", h.Valid, h.Lost)
	}
	credit1 := waitCredit(t, c, "v1")

	// Taken: v2 starts while v1 is cut off, takes the task and resumes it
	// from v1's checkpoint; v1, back, is told to stop or has its result
	// refused.
	taken := submitMandelr(t, adm, "taken", 1, mandelrTile, time.Second)[0]
	waitCheckpoint(t, js, v1, taken, 0.3)
	numbers = append(numbers, cutVolunteer(t, c, adm, js, taken, n1, v1, func() {
		c.startClientIn("v2", n2.Command, c.url)
		wait.For(t, 2*time.Minute, "v2 to take the task", func() bool {
			recs, err := tryReadLog(js)
			if err != nil {
				return false
			}
			return slices.ContainsFunc(taskEvents(recs)[taken], func(e taskEvent) bool { return e.host != v1 })
		})
	}))
	st = c.waitBatchDone("taken", 3*time.Minute)
	h1, _ := hostStatus(st, "v1")
	h2, _ := hostStatus(st, "v2")
	if b, _ := batchStatus(st, "taken"); b.Valid != 1 || b.Tasks[wu.TaskReported] != 1 {
		t.Errorf("batch taken: %+v; want its unit valid, its one task reported once", b)
	}
	if h1.Valid != 1 || h2.Valid != 1 {
		t.Errorf("valid results: v1 %d, v2 %d; want one each (v1's late work on the taken task dropped)", h1.Valid, h2.Valid)
	}
	credit2 := waitCredit(t, c, "v2")
	if st, err = adm.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := hostStatus(st, "v1"); h.Credit != credit1 {
		t.Errorf("v1's credit went from %.3f to %.3f with the task v2 took: credited twice", credit1, h.Credit)
	}
	t.Logf("credit: v1 %.3f for its task, v2 %.3f for the one it took over", credit1, credit2)
	recs := readLog(t, js)
	for i, task := range []string{alone, taken} {
		numbers[i].workLost = workLost(recs, task)
		numbers[i].log(t)
	}
}

// cutVolunteer cuts host (id) off from the project while it computes
// task, for longer than its lease: until the scheduler has taken the task
// back, and then until meanwhile has done what happens meanwhile. It heals
// the cut and measures it from the log (all but the work lost, which is
// known once the task is done).
func cutVolunteer(t *testing.T, c *labCluster, adm *admin.Client, js jetstream.JetStream, task string, node *netlab.Node, id string, meanwhile func()) faultNumbers {
	t.Helper()
	lost := func() (int, bool) {
		st, err := adm.Status(t.Context())
		h, _ := hostStatus(st, node.Name)
		return h.Lost, err == nil && h.Running == 0
	}
	before, _ := lost()
	cut := time.Now()
	c.lab.Cut(node)
	t.Logf("%s: cut off %s (%s) computing task %s", cut.Format(time.TimeOnly), node.Name, id, task)
	wait.For(t, time.Minute, "the task's lease to run out", func() bool {
		n, idle := lost()
		return n > before && idle
	})
	if meanwhile != nil {
		meanwhile()
	}
	healed := time.Now()
	c.lab.Heal()
	t.Logf("%s: healed, %.1f s after the cut", healed.Format(time.TimeOnly), healed.Sub(cut).Seconds())
	f := faultNumbers{name: fmt.Sprintf("%s cut off past its lease (task %s)", node.Name, task)}
	wait.For(t, 2*time.Minute, node.Name+" to be answered again", func() bool {
		recs, err := tryReadLog(js)
		if err != nil {
			return false
		}
		back := firstAfter(volunteerTimes(recs, []string{id}), healed)
		if back.IsZero() {
			return false
		}
		f.unavailable, f.recover = longestSilence(volunteerTimes(recs, nil), cut, back), back.Sub(healed)
		return true
	})
	return f
}

// waitCredit waits until the accounting peer has credited the named host,
// and returns its credit.
func waitCredit(t *testing.T, c *labCluster, name string) float64 {
	t.Helper()
	st := c.waitStatus(time.Minute, name+"'s credit", func(st wu.StatusReply) bool {
		h, ok := hostStatus(st, name)
		return ok && h.Credit > 0
	})
	h, _ := hostStatus(st, name)
	return h.Credit
}

// stagedChunk is a chunk of an upload as the project staged it.
type stagedChunk struct {
	uploader string
	blob     wu.Hash
	offset   int64
	size     int64 // the whole blob's
	bytes    int
	at       time.Time
}

// watchUploads follows the project's staging of chunked uploads (the
// UPLOADS stream) and hands every chunk to fn, until ctx ends.
func watchUploads(ctx context.Context, t *testing.T, js jetstream.JetStream, fn func(stagedChunk)) {
	t.Helper()
	st, err := js.Stream(ctx, "UPLOADS")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		parts := strings.SplitN(m.Subject(), ".", 3) // upload.<uploader>.<blob>
		if len(parts) != 3 {
			return
		}
		c := stagedChunk{uploader: parts[1], blob: wu.Hash(parts[2]), bytes: len(m.Data()), at: time.Now()}
		c.offset, _ = strconv.ParseInt(m.Headers().Get("Momonga-Upload-Offset"), 10, 64)
		c.size, _ = strconv.ParseInt(m.Headers().Get("Momonga-Upload-Size"), 10, 64)
		fn(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	context.AfterFunc(ctx, cc.Stop)
}

// TestVolunteersBehindSlowLossyLinks runs a batch of the long
// checkpointing app (mandelr, as `demo --scenario migrate` does) on real
// volunteers behind home links: 300 ms round trip, 1 Mbit/s up, every
// connection dropped after a minute. One link is also dropped while its
// volunteer uploads a checkpoint of several chunks: the upload must carry
// on from the chunk where it stood. The project runs its default leases
// (30 s, beats every 10 s), which a beat held up behind a chunk on such a
// link must not outlast.
func TestVolunteersBehindSlowLossyLinks(t *testing.T) {
	t.Parallel() // on a lab of its own, as every test of a lab (checkNoWorkersIn)
	c := newLabCluster(t, projectBin, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	c.mustCLI("app add", "mandelr", mandelrWasm)
	adm, err := admin.Dial(ctx, c.url, c.toolOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	js, err := jetstream.New(c.connect())
	if err != nil {
		t.Fatal(err)
	}
	home := netlab.Link{Latency: 150 * time.Millisecond, Jitter: 20 * time.Millisecond, UpKbps: 1000, DownKbps: 8000, DropEvery: time.Minute}
	const volunteers = 2
	links := map[string]*netlab.LinkProxy{}
	for i := range volunteers {
		name := fmt.Sprintf("v%d", i+1)
		node := c.lab.Node(name)
		links[name] = node.Link(c.servers[0].node.HostPort(natsPort), home)
		c.startClientIn(name, node.Command, "nats://"+links[name].Addr)
	}
	var ids map[string]string
	wait.For(t, 2*time.Minute, "every volunteer to say hello through its link", func() bool {
		st, err := adm.Status(ctx)
		ids = hostIDs(st)
		return err == nil && len(ids) == volunteers
	})
	byID := map[string]string{}
	for name, id := range ids {
		byID[id] = name
	}

	// Drop the link of the first volunteer seen uploading a checkpoint of
	// more than a chunk (not an image: those have another size), once its
	// first chunk is staged.
	var (
		mu      sync.Mutex
		chunks  []stagedChunk
		dropped stagedChunk
		dropAt  time.Time
	)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchUploads(wctx, t, js, func(ch stagedChunk) {
		mu.Lock()
		defer mu.Unlock()
		chunks = append(chunks, ch)
		if dropAt.IsZero() && ch.offset == 0 && ch.size > 512<<10 && ch.size != wideImageBytes {
			if l := links[byID[ch.uploader]]; l != nil {
				if err := l.Drop(); err != nil {
					t.Errorf("drop %s's link: %v", byID[ch.uploader], err)
				}
				dropped, dropAt = ch, time.Now()
			}
		}
	})
	tasks := submitMandelr(t, adm, "home-links", volunteers, mandelrWide, 2*time.Second)
	start := time.Now()
	st := c.waitBatchDone("home-links", 6*time.Minute)
	stopWatch()
	if b, _ := batchStatus(st, "home-links"); b.Valid != volunteers || b.Tasks[wu.TaskReported] != volunteers {
		t.Errorf("batch: %+v; want all %d units valid, each task reported once", b, volunteers)
	}
	recs := readLog(t, js)
	mu.Lock()
	defer mu.Unlock()
	if dropAt.IsZero() {
		var sizes []int64
		for _, ch := range chunks {
			sizes = append(sizes, ch.size)
		}
		t.Fatalf("no volunteer uploaded a checkpoint of more than one chunk (blob sizes of the chunks staged: %v): give mandelr a bigger tile", sizes)
	}
	// The upload the drop broke: its chunks, in the order staged, follow
	// one another to the end; none was staged twice, none skipped, and the
	// ones after the drop took up where it stood.
	var offsets []int64
	var after int
	for _, ch := range chunks {
		if ch.uploader == dropped.uploader && ch.blob == dropped.blob {
			offsets = append(offsets, ch.offset)
			if ch.at.After(dropAt) {
				after++
			}
		}
	}
	next := int64(0)
	for _, o := range offsets {
		if o != next {
			t.Errorf("upload of %s after the drop: chunks staged at offsets %v; want each once, in order", dropped.blob.Short(), offsets)
			break
		}
		next += 512 << 10
	}
	if next < dropped.size || after == 0 {
		t.Errorf("upload of %s (%d bytes): chunks at %v, %d after the drop; want it carried on to its end", dropped.blob.Short(), dropped.size, offsets, after)
	}
	checkpoint := false
	for _, r := range recs {
		var k wu.CheckpointReport
		if r.cmd.Op == wu.OpCkpt && json.Unmarshal(r.cmd.Body, &k) == nil && (k.Checkpoint.Hash == dropped.blob || k.Checkpoint.Base == dropped.blob) {
			checkpoint = true
		}
	}
	if !checkpoint {
		t.Errorf("the upload broken by the drop (%s) is not a checkpoint the project took", dropped.blob.Short())
	}
	if after > 0 {
		t.Logf("%s's link dropped while it uploaded checkpoint %s (%d bytes): %d of its %d chunks staged after the drop, from offset %d on",
			byID[dropped.uploader], dropped.blob.Short(), dropped.size, after, len(offsets), offsets[len(offsets)-after])
	}

	f := faultNumbers{name: fmt.Sprintf("%d volunteers on 300 ms, 1 Mbit/s links dropped every minute (%s's dropped mid-upload)", volunteers, byID[dropped.uploader])}
	f.unavailable = longestSilence(volunteerTimes(recs, nil), start, time.Now())
	f.recover = firstAfter(volunteerTimes(recs, []string{dropped.uploader}), dropAt).Sub(dropAt)
	var moves []string
	f.workLost, moves = handovers(recs, tasks...)
	for _, m := range moves {
		t.Log(m)
	}
	f.log(t)
	t.Logf("batch of %d mandelr tiles done in %.1f s", volunteers, time.Since(start).Seconds())
}
