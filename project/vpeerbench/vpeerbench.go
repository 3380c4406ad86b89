// Package vpeerbench measures the scheduler's virtual peer on this machine
// (`momonga-project bench vpeer`, DESIGN §5).
//
// Apply: a group of 1, 3 or 5 members, each with its own scheduler, follows
// a JetStream log while work requests from many hosts
// are appended to it, asynchronously with up to Window in flight (the
// gateway's case with many volunteers); the rate is entries appended over
// the time until every member has applied the last one. Beside it, the same
// number of records published the same way to a plain stream of the same
// replication gives the raw JetStream rate, and the ratio of the two what the
// members cost on top. The log is R1 on one embedded server, then R3 on a
// cluster of three embedded servers in this process, each with its own
// store, routed to each other on loopback; the members and the publisher
// are connected to the first.
//
// Restore: a scheduler holding a given number of work units (replication 2,
// half the tasks assigned, a tenth of those reported) stores a snapshot; a
// new member then restores it (from the object store, zstd, checksum,
// decode), alone and again with Replay more records to apply after it.
package vpeerbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/internal/scratch"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config says what Run measures.
type Config struct {
	Members []int // group sizes for Apply; default 1, 3, 5
	Entries int   // records appended for each Apply row; default 100,000
	Window  int   // appends in flight; default 1,024
	Units   []int // work units for each Restore row; default 100,000 and 1,000,000
	Replay  int   // records replayed after the snapshot; default 10,000
	// DataDir holds the server's data; "" uses a temporary directory,
	// removed at the end.
	DataDir string
	// Progress, if set, hears what is being done.
	Progress func(format string, args ...any)
	Logger   *slog.Logger
}

// ApplyRow is one group size on one kind of log.
type ApplyRow struct {
	Log      string  `json:"log"` // "R1": one server; "R3": a cluster of three
	Members  int     `json:"members"`
	Measured bool    `json:"measured"`
	Entries  int     `json:"entries,omitempty"`
	Applied  float64 `json:"applied_per_second,omitempty"` // entries applied by every member, per second
	Raw      float64 `json:"raw_per_second,omitempty"`     // raw JetStream publishes per second
	Ratio    float64 `json:"ratio,omitempty"`              // Applied / Raw
	Note     string  `json:"note,omitempty"`
}

// RestoreRow is one scheduler size.
type RestoreRow struct {
	Units         int           `json:"units"`
	Tasks         int           `json:"tasks"`
	SnapshotBytes int64         `json:"snapshot_bytes"` // as stored, compressed
	Build         time.Duration `json:"build_ns"`       // applying the records that made the state, once
	Restore       time.Duration `json:"restore_ns"`     // a new member ready from the snapshot alone
	Replayed      int           `json:"replayed"`
	RestoreReplay time.Duration `json:"restore_replay_ns"` // ready from the snapshot and Replayed records after it
}

// Report is the outcome of Run.
type Report struct {
	CPUs    int          `json:"cpus"`
	Apply   []ApplyRow   `json:"apply"`
	Restore []RestoreRow `json:"restore"`
}

// Run measures, one row after the other, on an embedded server.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if len(cfg.Members) == 0 {
		cfg.Members = []int{1, 3, 5}
	}
	if cfg.Entries <= 0 {
		cfg.Entries = 100_000
	}
	if cfg.Window <= 0 {
		cfg.Window = 1024
	}
	if cfg.Units == nil {
		cfg.Units = []int{100_000, 1_000_000}
	}
	if cfg.Replay <= 0 {
		cfg.Replay = 10_000
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir, remove, err := scratch.Dir(cfg.DataDir, "momonga-bench-vpeer-")
	if err != nil {
		return Report{}, err
	}
	defer remove()
	cfg.DataDir = dir
	b, err := start(ctx, cfg, 1)
	if err != nil {
		return Report{}, err
	}
	defer b.close()

	rep := Report{CPUs: runtime.GOMAXPROCS(0)}
	if err := b.applyRows(ctx, &rep); err != nil {
		return rep, err
	}
	cfg.Progress("apply: starting a cluster of three servers")
	r3, err := start(ctx, cfg, 3)
	if err != nil {
		return rep, fmt.Errorf("a cluster of three servers: %w", err)
	}
	err = r3.applyRows(ctx, &rep)
	r3.close()
	if err != nil {
		return rep, err
	}
	for _, units := range cfg.Units {
		cfg.Progress("restore: building a scheduler with %d work units", units)
		row, err := b.restore(ctx, units)
		if err != nil {
			return rep, fmt.Errorf("restore of %d work units: %w", units, err)
		}
		rep.Restore = append(rep.Restore, row)
	}
	return rep, nil
}

// bench is one embedded server, or a cluster of them, and a connection to
// the first; its streams have one replica on each server.
type bench struct {
	cfg      Config
	servers  []*natsserver.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	replicas int
	streams  int
}

// start starts n embedded servers, routed to each other on loopback when
// there are several, and waits until they can create replicated streams.
func start(ctx context.Context, cfg Config, n int) (*bench, error) {
	b := &bench{cfg: cfg, replicas: n}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	var routes []*url.URL
	var ports []int
	if n > 1 {
		var err error
		if ports, err = freePorts(n); err != nil {
			return nil, err
		}
		for _, p := range ports {
			routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
		}
	}
	for i := range n {
		opts := &natsserver.Options{
			JetStream:  true,
			StoreDir:   filepath.Join(cfg.DataDir, fmt.Sprintf("r%d-%d", n, i)),
			DontListen: n == 1,
			Host:       "127.0.0.1",
			Port:       natsserver.RANDOM_PORT,
			NoLog:      true,
			NoSigs:     true,
			MaxPayload: 8 << 20, // submissions of 10,000 units are a few megabytes
		}
		if n > 1 {
			opts.ServerName = fmt.Sprintf("bench-%d", i)
			opts.Cluster = natsserver.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[i]}
			opts.Routes = routes
		}
		ns, err := natsserver.NewServer(opts)
		if err != nil {
			return nil, err
		}
		b.servers = append(b.servers, ns)
		go ns.Start()
	}
	for _, ns := range b.servers {
		if !ns.ReadyForConnections(30 * time.Second) {
			return nil, errors.New("embedded NATS server did not start")
		}
	}
	var err error
	b.nc, err = nats.Connect("", nats.InProcessServer(b.servers[0]), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		cfg.Logger.Warn("nats", "err", err)
	}))
	if err != nil {
		return nil, err
	}
	if b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4*cfg.Window)); err != nil {
		return nil, err
	}
	if err := b.waitCluster(ctx); err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// waitCluster waits until every server has a current JetStream meta
// leader and a replicated stream can be made.
func (b *bench) waitCluster(ctx context.Context) error {
	if b.replicas == 1 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		current := true
		for _, ns := range b.servers {
			current = current && ns.JetStreamIsCurrent()
		}
		if current {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := b.js.CreateStream(actx, jetstream.StreamConfig{Name: "READY", Replicas: b.replicas, Storage: jetstream.MemoryStorage})
			acancel()
			if err == nil {
				return b.js.DeleteStream(ctx, "READY")
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster cannot make an R%d stream: %w", b.replicas, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts finds n free loopback ports for routes.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (b *bench) close() {
	if b.nc != nil {
		b.nc.Close()
	}
	for _, ns := range b.servers {
		ns.Shutdown()
	}
	for _, ns := range b.servers {
		ns.WaitForShutdown()
	}
}

// logName is "R1", "R3": how the rows name the log's replication.
func (b *bench) logName() string { return "R" + strconv.Itoa(b.replicas) }

// applyRows measures every group size on b's log.
func (b *bench) applyRows(ctx context.Context, rep *Report) error {
	for _, n := range b.cfg.Members {
		b.cfg.Progress("apply: %d members on an %s log, %d entries", n, b.logName(), b.cfg.Entries)
		row, err := b.apply(ctx, n)
		if err != nil {
			return fmt.Errorf("apply with %d members on %s: %w", n, b.logName(), err)
		}
		rep.Apply = append(rep.Apply, row)
	}
	return nil
}

// newLog makes a stream of its own for one measurement.
func (b *bench) newLog(ctx context.Context, what string) (*jetlog.Log, error) {
	b.streams++
	return jetlog.Open(ctx, b.js, jetlog.Config{Stream: fmt.Sprintf("%s%d", what, b.streams), Storage: jetstream.FileStorage, Replicas: b.replicas})
}

// policy is the scheduler's: long leases, so that nothing is lost while
// measuring; the oldest tasks first and no bound on the tasks a host holds,
// so that the state built is the one the rows describe (a work request of
// 100 slots takes 100 tasks).
var policy = sched.Config{Lease: 24 * time.Hour, DeadlineSecs: 7 * 24 * 3600, Policy: sched.PolicyFCFS, MaxTasksPerCore: -1}

func command(op, host string, seq uint64, body any) []byte {
	return wu.Encode(wu.Command{V: wu.WireVersion, Op: op, Host: host, Seq: seq, Body: wu.Encode(body)})
}

// appender appends records asynchronously, keeping up to a window in
// flight.
type appender struct {
	l        *jetlog.Log
	window   int
	inFlight []*jetlog.PendingAppend
	last     uint64
}

func (a *appender) add(ctx context.Context, r vpeer.Record) error {
	if len(a.inFlight) == a.window {
		if err := a.wait(ctx, 1); err != nil {
			return err
		}
	}
	p, err := a.l.AppendAsync(r)
	if err != nil {
		return err
	}
	a.inFlight = append(a.inFlight, p)
	return nil
}

// wait waits for the oldest n appends in flight (all when n < 0).
func (a *appender) wait(ctx context.Context, n int) error {
	if n < 0 || n > len(a.inFlight) {
		n = len(a.inFlight)
	}
	for _, p := range a.inFlight[:n] {
		seq, err := p.Wait(ctx)
		if err != nil {
			return err
		}
		a.last = max(a.last, seq)
	}
	a.inFlight = a.inFlight[n:]
	return nil
}

// setup appends an app and units work units of the given replication, in
// submissions of the most units allowed, a batch for every 100,000 units
// (adding to a batch costs the scheduler time in the batch's size), and
// hellos from hosts.
func setup(ctx context.Context, a *appender, units, replication, hosts int) error {
	if err := a.add(ctx, vpeer.Record{Payload: command(wu.OpAddApp, "adm:bench", 1, wu.AddApp{V: 1, Name: "bench", Hash: wu.HashOf([]byte("bench")), Size: 5})}); err != nil {
		return err
	}
	seq := uint64(2)
	for done := 0; done < units; seq++ {
		n := min(wu.MaxUnitsPerSubmit, units-done)
		s := wu.Submit{V: 1, Batch: "bench" + strconv.Itoa(done/100_000), App: "bench", Replication: replication, Quorum: replication}
		s.Units = make([]wu.UnitSpec, n)
		for i := range s.Units {
			s.Units[i].Args = []string{strconv.Itoa(done + i)}
		}
		if err := a.add(ctx, vpeer.Record{Payload: command(wu.OpSubmit, "adm:bench", seq, s)}); err != nil {
			return err
		}
		done += n
	}
	for h := range hosts {
		if err := a.add(ctx, vpeer.Record{Payload: command(wu.OpHello, hostName(h), 0, wu.Hello{V: 1, Host: wu.HostInfo{Name: hostName(h), CPUs: 4, FLOPS: 4e9}})}); err != nil {
			return err
		}
	}
	return a.wait(ctx, -1)
}

func hostName(i int) string { return "h" + strconv.Itoa(i) }

// apply measures a group of n members.
func (b *bench) apply(ctx context.Context, n int) (ApplyRow, error) {
	row := ApplyRow{Log: b.logName(), Members: n, Measured: true, Entries: b.cfg.Entries}
	l, err := b.newLog(ctx, "APPLY")
	if err != nil {
		return row, err
	}
	reg, err := jetlog.OpenRegistry(ctx, b.js, fmt.Sprintf("APPLYREG%d", b.streams), b.replicas)
	if err != nil {
		return row, err
	}
	const hosts = 1000
	a := &appender{l: l, window: b.cfg.Window}
	if err := setup(ctx, a, b.cfg.Entries, 1, hosts); err != nil {
		return row, err
	}
	g, err := vpeer.NewGroup(vpeer.GroupConfig{
		Name:       "bench",
		Size:       n,
		Registry:   reg,
		Log:        l,
		NewMachine: func() vpeer.StateMachine { return sched.New(policy) },
		Reply:      b.nc.Publish,
		Heartbeat:  200 * time.Millisecond,
		Logger:     b.cfg.Logger,
	})
	if err != nil {
		return row, err
	}
	stop := runGroup(g)
	defer stop()
	if err := waitApplied(ctx, g, n, a.last); err != nil {
		return row, err
	}

	start := time.Now()
	seqs := make([]uint64, hosts)
	for i := range b.cfg.Entries {
		h := i % hosts
		seqs[h]++
		// Carried as the gateway writes it: a de-duplication id and the
		// requester's inbox.
		reply := "_INBOX.bench." + strconv.Itoa(i)
		r := vpeer.Record{ID: hostName(h) + "." + strconv.FormatUint(seqs[h], 10) + "." + reply, ReplyTo: reply, Payload: command(wu.OpWork, hostName(h), seqs[h], wu.WorkRequest{V: 1, Seq: seqs[h], Slots: 1})}
		if err := a.add(ctx, r); err != nil {
			return row, err
		}
	}
	if err := a.wait(ctx, -1); err != nil {
		return row, err
	}
	if err := waitApplied(ctx, g, n, a.last); err != nil {
		return row, err
	}
	row.Applied = float64(b.cfg.Entries) / time.Since(start).Seconds()
	stop()

	if row.Raw, err = b.raw(ctx); err != nil {
		return row, err
	}
	row.Ratio = row.Applied / row.Raw
	return row, nil
}

// raw publishes as many records as apply appends, the same way, to a plain
// stream, and returns the rate.
func (b *bench) raw(ctx context.Context) (float64, error) {
	b.streams++
	name := fmt.Sprintf("RAW%d", b.streams)
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name}, Storage: jetstream.FileStorage, Replicas: b.replicas}); err != nil {
		return 0, err
	}
	payload := command(wu.OpWork, "h1", 1, wu.WorkRequest{V: 1, Seq: 1, Slots: 1})
	start := time.Now()
	var inFlight []jetstream.PubAckFuture
	for i := range b.cfg.Entries {
		if len(inFlight) == b.cfg.Window {
			if err := ackOf(ctx, inFlight[0]); err != nil {
				return 0, err
			}
			inFlight = inFlight[1:]
		}
		reply := "_INBOX.bench." + strconv.Itoa(i)
		msg := &nats.Msg{Subject: name, Data: payload, Header: nats.Header{jetlog.HeaderReplyTo: {reply}, jetstream.MsgIDHeader: {"h1." + strconv.Itoa(i) + "." + reply}}}
		f, err := b.js.PublishMsgAsync(msg)
		if err != nil {
			return 0, err
		}
		inFlight = append(inFlight, f)
	}
	for _, f := range inFlight {
		if err := ackOf(ctx, f); err != nil {
			return 0, err
		}
	}
	return float64(b.cfg.Entries) / time.Since(start).Seconds(), nil
}

func ackOf(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runGroup runs g until the function it returns is called.
func runGroup(g *vpeer.Group) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Run(ctx) })
	return sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
}

// waitApplied waits until g runs n members and each has applied seq.
func waitApplied(ctx context.Context, g *vpeer.Group, n int, seq uint64) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for len(g.Members()) < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	for _, m := range g.Members() {
		if err := m.WaitApplied(ctx, seq); err != nil {
			return err
		}
	}
	return nil
}

// restore measures restoring a scheduler of the given number of work units.
func (b *bench) restore(ctx context.Context, units int) (RestoreRow, error) {
	row := RestoreRow{Units: units, Tasks: 2 * units, Replayed: b.cfg.Replay}
	l, err := b.newLog(ctx, "RESTORE")
	if err != nil {
		return row, err
	}
	snaps, err := jetlog.OpenSnapshots(ctx, b.js, fmt.Sprintf("RESTORESNAP%d", b.streams), 1)
	if err != nil {
		return row, err
	}
	member := func() (*vpeer.Member, func()) {
		m := vpeer.NewMember(vpeer.MemberConfig{Log: l, Machine: sched.New(policy), Snapshots: snaps, Logger: b.cfg.Logger})
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = m.Run(ctx) })
		return m, sync.OnceFunc(func() { cancel(); wg.Wait() })
	}

	// The state: all units submitted, half the tasks assigned in work
	// requests of 100 slots, a tenth of those reported.
	const hosts = 100
	start := time.Now()
	builder, stop := member()
	defer stop()
	a := &appender{l: l, window: b.cfg.Window}
	if err := setup(ctx, a, units, 2, hosts); err != nil {
		return row, err
	}
	seqs := make([]uint64, hosts)
	next := func(h int) uint64 { seqs[h]++; return seqs[h] }
	work := func(h, slots int) error {
		seq := next(h)
		return a.add(ctx, vpeer.Record{Payload: command(wu.OpWork, hostName(h), seq, wu.WorkRequest{V: 1, Seq: seq, Slots: slots})})
	}
	// Request 2k gets replica 0 of units 100k+1 to 100k+100, request 2k+1
	// replica 1 of the same (a host never holds two replicas of a unit).
	for i := range units / 100 {
		if err := work(i%hosts, 100); err != nil {
			return row, err
		}
	}
	for u := 1; u <= units/2; u += 10 {
		h := 2 * ((u - 1) / 100) % hosts
		seq := next(h)
		r := wu.Report{V: 1, Seq: seq, Task: "wu" + strconv.Itoa(u) + "_0", Outcome: wu.OutcomeSuccess, Output: wu.HashOf([]byte("42")), OutputSize: 2, CPUSeconds: 1}
		if err := a.add(ctx, vpeer.Record{Payload: command(wu.OpResult, hostName(h), seq, r)}); err != nil {
			return row, err
		}
	}
	if err := a.wait(ctx, -1); err != nil {
		return row, err
	}
	mark, err := vpeer.MarkSnapshot(ctx, l)
	if err != nil {
		return row, err
	}
	// Checks that the state is what the rows say, as the builder has it.
	var st wu.StatusReply
	if err := builder.WaitApplied(ctx, mark); err != nil {
		return row, err
	}
	builder.Query(func() { st = builder.Machine().(*sched.Machine).Status() })
	var total, assigned, reported int
	for _, b := range st.Batches {
		total += b.Units
		assigned += b.Tasks[wu.TaskAssigned]
		reported += b.Tasks[wu.TaskReported]
	}
	if total != units || assigned+reported != units || reported != (units/2+9)/10 {
		return row, fmt.Errorf("the state built is not the one wanted: %d units, %d tasks assigned, %d reported", total, assigned, reported)
	}
	if err := builder.WaitApplied(ctx, mark); err != nil {
		return row, err
	}
	if err := waitStored(ctx, builder, mark); err != nil {
		return row, err
	}
	row.Build = time.Since(start)
	row.SnapshotBytes = builder.Status().Stored.Size
	stop()
	b.cfg.Progress("restore: %d work units built in %.1f s; restoring", units, row.Build.Seconds())

	timeReady := func() (time.Duration, error) {
		start := time.Now()
		m, stop := member()
		defer stop()
		select {
		case <-m.Ready():
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		d := time.Since(start)
		if st := m.Status(); st.Restored == nil || st.Restored.Seq != mark {
			return 0, fmt.Errorf("the member restored %+v, not the snapshot at %d", st.Restored, mark)
		}
		return d, nil
	}
	if row.Restore, err = timeReady(); err != nil {
		return row, err
	}
	// More work requests after the snapshot, for the next member to replay.
	for i := range b.cfg.Replay {
		if err := work(i%hosts, 1); err != nil {
			return row, err
		}
	}
	if err := a.wait(ctx, -1); err != nil {
		return row, err
	}
	row.RestoreReplay, err = timeReady()
	return row, err
}

// waitStored waits until m has stored the snapshot at seq, for at most two
// minutes (the member tries again when storing fails, a few times).
func waitStored(ctx context.Context, m *vpeer.Member, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if st := m.Status().Stored; st != nil && st.Seq >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("snapshot at %d not stored: %w", seq, ctx.Err())
		case <-t.C:
		}
	}
}
