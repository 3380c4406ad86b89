package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/momonga-project/momonga/vpeer/jetlog"
	wu "github.com/momonga-project/momonga/workunits"
)

// rounds is how many times a level alternates between work requests and
// raw publishes when it runs for a duration, so that a change in the
// machine's load during the level weighs on both sides of the ratio alike.
const rounds = 3

// level measures n volunteers requesting work at once over t, and n
// publishers storing the same records in the raw stream at once.
func (r *run) level(ctx context.Context, t Transport, n int) (Row, error) {
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	keep := func(nc *nats.Conn, err error) (*nats.Conn, error) {
		if err == nil {
			conns = append(conns, nc)
		}
		return nc, err
	}
	vols := make([]*volunteer, n)
	work := make([]func(context.Context) (int, error), n)
	publish := make([]func(context.Context) (int, error), n)
	echo := make([]func(context.Context) (int, error), n)
	for i := range n {
		host := fmt.Sprintf("vol-%s-%d-%d", t, n, i)
		if r.cfg.Secure {
			id, opts, err := r.attach(ctx, host)
			if err != nil {
				return Row{}, err
			}
			host = id
			r.hostOpts[host] = opts
		}
		nc, err := keep(r.connect(t, host))
		if err != nil {
			return Row{}, err
		}
		vols[i] = &volunteer{nc: nc, host: host, slots: r.cfg.Slots, firstReply: &r.aReply}
		if err := vols[i].hello(ctx); err != nil {
			return Row{}, err
		}
		work[i] = vols[i].work

		host = fmt.Sprintf("raw-%s-%d-%d", t, n, i)
		if nc, err = keep(r.connect(t, host, r.projectOpts...)); err != nil {
			return Row{}, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return Row{}, fmt.Errorf("%s: jetstream: %w", host, err)
		}
		p := &publisher{nc: nc, js: js, host: host}
		publish[i], echo[i] = p.publish, p.echo
	}
	stopEcho, err := r.startEcho()
	if err != nil {
		return Row{}, err
	}
	defer stopEcho()

	limit := limit{requests: r.cfg.Requests}
	times := 1
	if limit.requests == 0 {
		limit.duration = r.cfg.Duration / rounds
		times = rounds
	}
	var dispatched, published, echoed sample
	for round := range times {
		stop := func() {}
		if r.cfg.WorkProfile != "" && round == 0 {
			var err error
			if stop, err = startProfile(fmt.Sprintf("%s.%s-%d", r.cfg.WorkProfile, t, n)); err != nil {
				return Row{}, err
			}
		}
		s, err := measure(ctx, limit, work)
		stop()
		for _, v := range vols {
			r.received[v.host] = v.tasks
		}
		if errors.Is(err, errQueueEmpty) {
			err = fmt.Errorf("%w after %d assignments of %d tasks queued: queue more or measure for less time",
				err, dispatched.units+s.units, r.queued)
		}
		if err != nil {
			return Row{}, err
		}
		dispatched.add(s)
		if s, err = measure(ctx, limit, publish); err != nil {
			return Row{}, fmt.Errorf("raw publish: %w", err)
		}
		published.add(s)
		if s, err = measure(ctx, limit, echo); err != nil {
			return Row{}, fmt.Errorf("echo: %w", err)
		}
		echoed.add(s)
	}
	row := Row{Transport: t, Volunteers: n, Slots: r.cfg.Slots, Queued: r.queued, Dispatch: dispatched.summary(), RawPublish: published.summary(),
		Assignments: dispatched.units, AssignmentsPerSecond: float64(dispatched.units) / dispatched.elapsed.Seconds()}
	row.Ratio = row.AssignmentsPerSecond / row.RawPublish.PerSecond
	row.Echo = echoed.summary()
	row.EchoRatio = row.Echo.PerSecond / row.RawPublish.PerSecond
	return row, nil
}

// connect opens a connection of its own for one simulated volunteer, with
// replies under its own inbox prefix as a real volunteer's are, and its
// credentials on a secured server (or extra ones, for a raw publisher).
func (r *run) connect(t Transport, host string, extra ...nats.Option) (*nats.Conn, error) {
	url := r.srv.ClientURL()
	opts := append([]nats.Option{nats.Name("momonga bench " + host), nats.CustomInboxPrefix("_INBOX_" + host)}, r.hostOpts[host]...)
	opts = append(opts, extra...)
	if t == InProcess {
		url = ""
		opts = append(opts, nats.InProcessServer(r.srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", host, err)
	}
	return nc, nil
}

// limit ends a measurement: after so many requests per requester, or else
// after a duration.
type limit struct {
	requests int
	duration time.Duration
}

// sample is what one or more measurements timed.
type sample struct {
	elapsed time.Duration
	cpu     time.Duration   // of the whole process; 0 where unknown
	latency []time.Duration // one per request
	units   int             // what the requests did: tasks assigned, records published
}

func (s *sample) add(o sample) {
	s.elapsed += o.elapsed
	s.cpu += o.cpu
	s.latency = append(s.latency, o.latency...)
	s.units += o.units
}

func (s *sample) summary() Measurement {
	slices.Sort(s.latency)
	m := Measurement{
		Requests:  len(s.latency),
		Seconds:   s.elapsed.Seconds(),
		PerSecond: float64(len(s.latency)) / s.elapsed.Seconds(),
		P50:       quantile(s.latency, 0.50),
		P99:       quantile(s.latency, 0.99),
	}
	if len(s.latency) > 0 {
		m.CPUPerRequest = s.cpu / time.Duration(len(s.latency))
	}
	return m
}

// quantile is the nearest-rank q-quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(int(math.Ceil(q*float64(len(sorted))))-1, 0)]
}

// measure runs each op in a loop of its own, all at once, until lim, and
// times every call; an op says how many units of work a call did. Elapsed
// runs until the last call in flight returns.
func measure(ctx context.Context, lim limit, ops []func(context.Context) (int, error)) (sample, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([][]time.Duration, len(ops))
	units := make([]int, len(ops))
	var wg sync.WaitGroup
	cpu, cpuKnown := ProcessCPU()
	start := time.Now()
	deadline := start.Add(lim.duration)
	for i, op := range ops {
		wg.Go(func() {
			for n := 0; lim.requests == 0 || n < lim.requests; n++ {
				t := time.Now()
				if lim.requests == 0 && !t.Before(deadline) || ctx.Err() != nil {
					return
				}
				n, err := op(ctx)
				if err != nil {
					cancel(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t))
				units[i] += n
			}
		})
	}
	wg.Wait()
	s := sample{elapsed: time.Since(start), latency: slices.Concat(lat...)}
	for _, n := range units {
		s.units += n
	}
	if end, ok := ProcessCPU(); ok && cpuKnown {
		s.cpu = end - cpu
	}
	if ctx.Err() != nil {
		return s, context.Cause(ctx)
	}
	return s, nil
}

// volunteer is one simulated host: a connection of its own and the sequence
// numbers of its requests, as client/daemon keeps them.
type volunteer struct {
	nc    *nats.Conn
	host  string
	slots int // tasks each request asks for
	seq   uint64
	tasks []string // received, in order
	// firstReply is set to the first work reply of any volunteer.
	firstReply *atomic.Pointer[[]byte]
}

func (v *volunteer) hello(ctx context.Context) error {
	req := wu.Hello{V: wu.WireVersion, Host: wu.HostInfo{Name: v.host, OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: 1, FLOPS: 1e9}}
	var rep wu.HelloReply
	if err := request(ctx, v.nc, wu.VolunteerSubject(v.host, wu.OpHello), wu.Encode(req), &rep); err != nil {
		return fmt.Errorf("%s: hello: %w", v.host, err)
	}
	if rep.Error != nil {
		return fmt.Errorf("%s: hello: %w", v.host, rep.Error)
	}
	v.seq = rep.NextSeq - 1
	return nil
}

// work asks for v.slots tasks and returns how many it was given: all it
// asked for, as the queue holds more than the level takes.
func (v *volunteer) work(ctx context.Context) (int, error) {
	v.seq++
	req := wu.WorkRequest{V: wu.WireVersion, Seq: v.seq, Slots: v.slots}
	var rep wu.WorkReply
	data, err := requestData(ctx, v.nc, wu.VolunteerSubject(v.host, wu.OpWork), wu.Encode(req), &rep)
	if err != nil {
		return 0, fmt.Errorf("%s: work request %d: %w", v.host, v.seq, err)
	}
	if rep.Error != nil {
		return 0, fmt.Errorf("%s: work request %d: %w", v.host, v.seq, rep.Error)
	}
	switch n := len(rep.Assignments); {
	case n == 0:
		return 0, fmt.Errorf("%s: work request %d: %w", v.host, v.seq, errQueueEmpty)
	case n > v.slots:
		return 0, fmt.Errorf("%s: work request %d asked for %d tasks and got %d", v.host, v.seq, v.slots, n)
	}
	for _, a := range rep.Assignments {
		v.tasks = append(v.tasks, a.Task)
	}
	if v.firstReply != nil && v.firstReply.Load() == nil {
		v.firstReply.CompareAndSwap(nil, &data)
	}
	return len(rep.Assignments), nil
}

func request(ctx context.Context, nc *nats.Conn, subject string, data []byte, out any) error {
	_, err := requestData(ctx, nc, subject, data, out)
	return err
}

// requestData sends a request and decodes its reply into out; it returns
// the reply as it came, too.
func requestData(ctx context.Context, nc *nats.Conn, subject string, data []byte, out any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, err
	}
	if err := wu.DecodeReply(msg.Data, out); err != nil {
		return nil, fmt.Errorf("malformed reply: %w", err)
	}
	return msg.Data, nil
}

// startEcho answers every request on echoSubject, on the project's own
// connection as the scheduler's member answers work requests, with the
// first work reply a volunteer got. It returns what stops it.
func (r *run) startEcho() (stop func(), err error) {
	sub, err := r.nc.Subscribe(echoSubject, func(m *nats.Msg) {
		if rep := r.aReply.Load(); rep != nil {
			_ = m.Respond(*rep)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("echo: subscribe: %w", err)
	}
	// Requests queue in the subscription's buffer while the callback is
	// busy, as the gateway's do.
	_ = sub.SetPendingLimits(-1, -1)
	if err := r.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("echo: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// publisher stores, in the raw stream, the records the gateway would append
// for a volunteer's work requests.
type publisher struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	host string
	seq  uint64
}

func (p *publisher) publish(ctx context.Context) (int, error) {
	p.seq++
	// The same payload, id and headers as the gateway's append, with the
	// reply subject a request would have.
	inbox := p.nc.NewRespInbox()
	body := wu.Encode(wu.WorkRequest{V: wu.WireVersion, Seq: p.seq, Slots: 1})
	msg := &nats.Msg{
		Subject: rawSubject,
		Data:    wu.Encode(wu.Command{V: wu.WireVersion, Op: wu.OpWork, Host: p.host, Seq: p.seq, Body: body}),
		Header: nats.Header{
			jetstream.MsgIDHeader: {p.host + "." + strconv.FormatUint(p.seq, 10) + "." + inbox},
			jetlog.HeaderReplyTo:  {inbox},
		},
	}
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(rawStream))
	if err != nil {
		return 0, fmt.Errorf("%s: publish %d: %w", p.host, p.seq, err)
	}
	if ack.Duplicate {
		return 0, fmt.Errorf("%s: publish %d was taken for a duplicate", p.host, p.seq)
	}
	return 1, nil
}

// echo sends the request a volunteer sends for one task to the echo
// responder, and decodes the reply as a volunteer does.
func (p *publisher) echo(ctx context.Context) (int, error) {
	p.seq++
	var rep wu.WorkReply
	if err := request(ctx, p.nc, echoSubject, wu.Encode(wu.WorkRequest{V: wu.WireVersion, Seq: p.seq, Slots: 1}), &rep); err != nil {
		return 0, fmt.Errorf("%s: echo %d: %w", p.host, p.seq, err)
	}
	if len(rep.Assignments) == 0 {
		return 0, fmt.Errorf("%s: echo %d: a reply without a task", p.host, p.seq)
	}
	return 1, nil
}

// attach makes a user called name and attaches a host to it as `momonga
// attach` does; it returns the host's id and the options it connects with.
func (r *run) attach(ctx context.Context, name string) (string, []nats.Option, error) {
	_, key, err := r.adm.AddUser(ctx, name, "", "")
	if err != nil {
		return "", nil, fmt.Errorf("%s: user: %w", name, err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, err
	}
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(r.srv.ClientURL(), nats.UserInfo(wu.AttachUserName(pub), key), nats.CustomInboxPrefix(wu.InboxPrefix(pub)))
	if err != nil {
		return "", nil, fmt.Errorf("%s: attach: %w", name, err)
	}
	defer nc.Close()
	var rep wu.AttachReply
	if err := request(ctx, nc, wu.AttachSubject(pub), wu.Encode(wu.AttachRequest{V: wu.WireVersion, AccountKey: key, NKey: pub, Host: wu.HostInfo{Name: name}}), &rep); err != nil {
		return "", nil, fmt.Errorf("%s: attach: %w", name, err)
	}
	if rep.Error != nil {
		return "", nil, fmt.Errorf("%s: attach: %w", name, rep.Error)
	}
	return rep.Host, []nats.Option{nats.Nkey(pub, kp.Sign)}, nil
}

// startProfile starts a CPU profile written to path, and returns what
// stops it.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
