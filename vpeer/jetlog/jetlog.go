// Package jetlog keeps a virtual peer's log in a JetStream stream
// (SCHED_<vp> in DESIGN §1, the Log of DESIGN §5). JetStream's Raft
// replication is the atomic multicast: every member reads the same records
// in the same order, and a stream with R3 or R5 survives the loss of a
// minority of servers.
//
// A record is one message on the stream's subject: the payload is the
// message data, Record.ID the Nats-Msg-Id header (so the stream drops
// duplicates within its duplicate window), and ReplyTo, Tick and Snapshot
// travel in the Vpeer-Reply-To, Vpeer-Tick and Vpeer-Snapshot headers. A
// batched record (Record.Batch) has the Vpeer-Batch header, and its
// requests framed in the data (batch.go).
//
// The package is vpeer's JetStream adapter as a whole: besides the log it
// keeps snapshots in an object store (Snapshots), membership and the lease in
// a KV bucket (Registry), and answers status and snapshot requests
// (ServeGroup, GatherStatus, RequestSnapshot).
package jetlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
)

// Headers of a record, beside jetstream.MsgIDHeader. New headers may be
// added; these keep their meaning.
const (
	HeaderReplyTo  = "Vpeer-Reply-To" // where the reply goes
	HeaderTick     = "Vpeer-Tick"     // tick time in unix nanoseconds, decimal
	HeaderSnapshot = "Vpeer-Snapshot" // "1" on a snapshot point
	HeaderBatch    = "Vpeer-Batch"    // the batch format, "1", on a batched record
	// HeaderOrigin names the process that appended the record (Origin), so
	// that an audit of the log can tell who acted when: which lease holder
	// appended a tick, for one. Members ignore it.
	HeaderOrigin = "Vpeer-Origin"
	// HeaderTerm is Record.Term in decimal, on the records a lease holder
	// appends for its group.
	HeaderTerm = "Vpeer-Term"
)

// errCodeDuplicateInProcess is JetStream's answer, on a replicated stream,
// to a message whose ID is a duplicate of one not yet committed.
const errCodeDuplicateInProcess jetstream.ErrorCode = 10158

// Config describes the stream of one virtual peer.
type Config struct {
	Stream  string // stream name, e.g. SCHED_main
	Subject string // the one subject records are published on; default "vpeer.<Stream>"
	// Replicas is the stream's replication factor: 1 embedded, 3 or 5
	// clustered; default 1.
	Replicas int
	// Storage is where the stream keeps records; the zero value is
	// jetstream.FileStorage.
	Storage jetstream.StorageType
	// DuplicateWindow is how long the stream remembers record IDs; zero keeps
	// the server's default (two minutes).
	DuplicateWindow time.Duration
}

// Log is a vpeer.Log in a JetStream stream. It is safe for concurrent use.
type Log struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	name    string
	subject string
	stall   time.Duration // see Read
	logger  *slog.Logger
	origin  string // HeaderOrigin of the records appended; "" for none
}

// DefaultStall is how long a reader may deliver nothing while the stream
// holds records it has not delivered before Read replaces it.
const DefaultStall = 3 * time.Second

func newLog(js jetstream.JetStream, st jetstream.Stream, name, subject string) *Log {
	return &Log{js: js, stream: st, name: name, subject: subject, stall: DefaultStall, logger: slog.New(slog.DiscardHandler)}
}

// Logged returns a copy of l that tells logger when Read replaces a
// reader, and replaces one that stalls for stall (DefaultStall when 0).
func (l *Log) Logged(logger *slog.Logger, stall time.Duration) *Log {
	c := *l
	c.logger = logger.With("stream", l.name)
	if stall > 0 {
		c.stall = stall
	}
	return &c
}

// Origin returns a copy of l that names process (HeaderOrigin) in every
// record it appends.
func (l *Log) Origin(process string) *Log {
	c := *l
	c.origin = process
	return &c
}

var (
	_ vpeer.Log     = (*Log)(nil)
	_ vpeer.Trimmer = (*Log)(nil)
)

// Open creates the stream described by cfg, or updates it to cfg if it
// exists, and returns the log kept in it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Log, error) {
	if cfg.Stream == "" {
		return nil, errors.New("jetlog: open: no stream name")
	}
	if cfg.Subject == "" {
		cfg.Subject = "vpeer." + cfg.Stream
	}
	if strings.ContainsAny(cfg.Subject, "*> \t") {
		return nil, fmt.Errorf("jetlog: open %s: subject %q must be one literal subject", cfg.Stream, cfg.Subject)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Stream,
		Subjects:   []string{cfg.Subject},
		Retention:  jetstream.LimitsPolicy,
		Storage:    cfg.Storage,
		Replicas:   cfg.Replicas,
		Duplicates: cfg.DuplicateWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("jetlog: open stream %s: %w", cfg.Stream, err)
	}
	return newLog(js, stream, cfg.Stream, cfg.Subject), nil
}

// Bind returns the log kept in an existing stream, as a process joining a
// virtual peer finds it, without changing the stream's configuration.
func Bind(ctx context.Context, js jetstream.JetStream, stream string) (*Log, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("jetlog: find stream %s: %w", stream, err)
	}
	cfg := st.CachedInfo().Config
	if len(cfg.Subjects) != 1 {
		return nil, fmt.Errorf("jetlog: stream %s has subjects %v, want one", stream, cfg.Subjects)
	}
	return newLog(js, st, stream, cfg.Subjects[0]), nil
}

// Append publishes r and waits for the stream to store it. A record whose ID
// the stream already holds returns the sequence of the one stored and
// vpeer.ErrDuplicate; on a replicated stream the sequence is 0 if that
// record was still being committed. When ctx ends or the connection drops
// first, the record may still have been stored: retry with the same ID.
//
// Append is safe to call from many goroutines, and that is how it is fast:
// it publishes asynchronously and waits for its own acknowledgement, so
// concurrent appends share the connection without a round trip each
// (BenchmarkAppend measures about twice the rate of synchronous publishes).
func (l *Log) Append(ctx context.Context, r vpeer.Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("jetlog: append %q to %s: %w", r.ID, l.name, err)
	}
	p, err := l.AppendAsync(r)
	if err != nil {
		return 0, err
	}
	return p.Wait(ctx)
}

// AppendAsync publishes r without waiting for the stream to store it; Wait
// on the result gives what Append would have returned. It lets one goroutine
// keep many appends in flight. How many may be outstanding on the connection
// is set on the JetStream handle (jetstream.WithPublishAsyncMaxPending,
// default 4000); past that, AppendAsync blocks for a while and then fails.
func (l *Log) AppendAsync(r vpeer.Record) (*PendingAppend, error) {
	// No expected-stream header: every member would read it back with
	// every record. acked checks which stream stored the record instead.
	f, err := l.js.PublishMsgAsync(l.message(r))
	if err != nil {
		return nil, fmt.Errorf("jetlog: append %q to %s: %w", r.ID, l.name, err)
	}
	return &PendingAppend{log: l, rec: r, f: f}, nil
}

// PendingAppend is an append in flight, from AppendAsync.
type PendingAppend struct {
	log *Log
	rec vpeer.Record
	f   jetstream.PubAckFuture
}

// Wait waits for the stream's answer and returns the record's sequence
// number, as Append does.
func (p *PendingAppend) Wait(ctx context.Context) (uint64, error) {
	select {
	case ack := <-p.f.Ok():
		return p.log.acked(p.rec, ack, nil)
	case err := <-p.f.Err():
		return p.log.acked(p.rec, nil, err)
	case <-ctx.Done():
		return p.log.acked(p.rec, nil, ctx.Err())
	}
}

func (l *Log) message(r vpeer.Record) *nats.Msg {
	m := &nats.Msg{Subject: l.subject, Data: r.Payload, Header: make(nats.Header, 3)}
	if len(r.Batch) > 0 {
		m.Data = encodeBatch(r.Batch)
		m.Header[HeaderBatch] = []string{batchFormat}
	}
	if r.ID != "" {
		m.Header[jetstream.MsgIDHeader] = []string{r.ID}
	}
	if r.ReplyTo != "" {
		m.Header[HeaderReplyTo] = []string{r.ReplyTo}
	}
	if !r.Tick.IsZero() {
		m.Header[HeaderTick] = []string{strconv.FormatInt(r.Tick.UnixNano(), 10)}
	}
	if r.Snapshot {
		m.Header[HeaderSnapshot] = []string{"1"}
	}
	if l.origin != "" {
		m.Header[HeaderOrigin] = []string{l.origin}
	}
	if r.Term != 0 {
		m.Header[HeaderTerm] = []string{strconv.FormatUint(r.Term, 10)}
	}
	return m
}

// acked turns the stream's answer to a publish of r into Append's results.
func (l *Log) acked(r vpeer.Record, ack *jetstream.PubAck, err error) (uint64, error) {
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess {
			return 0, vpeer.ErrDuplicate
		}
		return 0, fmt.Errorf("jetlog: append %q to %s: %w", r.ID, l.name, err)
	}
	if ack.Stream != l.name {
		// The subject was captured by some other stream, after this one
		// was deleted.
		return 0, fmt.Errorf("jetlog: append %q to %s: stored in stream %s", r.ID, l.name, ack.Stream)
	}
	if ack.Duplicate {
		return ack.Sequence, vpeer.ErrDuplicate
	}
	return ack.Sequence, nil
}

// Read calls fn for every record from sequence from on (1 when from is 0),
// in order, through an ordered consumer that survives reconnections and
// server restarts by resuming after the last record it delivered. It waits
// for new records until ctx is done (it then returns ctx.Err()), fn
// returns an error (returned as is) or the connection is closed. A record
// with a malformed header is delivered with Record.Err set.
//
// On a cluster, a reader has more to survive: when the server leading the
// stream dies, the consumer must move to another, and one was seen to stop
// delivering for good while the stream grew. So a reader that delivers
// nothing for the stall time (see Logged; 3 s by default) while the stream
// holds records it has not delivered, and fn is not running, is replaced by
// a new one after the last record delivered; a reader that fails (no
// stream leader during an election) is replaced after a pause.
//
// fn runs on the consumer's delivery goroutine, one record after the
// other, and never after Read has returned.
func (l *Log) Read(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
	return resume(ctx, max(from, 1), fn, resumer{
		read:   l.readOnce,
		last:   l.LastSeq,
		closed: l.js.Conn().IsClosed,
		stall:  l.stall,
		logger: l.logger,
	})
}

// readOnce is one ordered consumer's part of Read. It ends when ctx is
// done, fn fails (a final error), or the consumer stops.
func (l *Log) readOnce(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   max(from, 1),
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("jetlog: read %s from %d: %w", l.name, from, err)
	}
	defer l.deleteConsumer(cons)
	var (
		mu      sync.Mutex
		stopped bool // under mu: fn is not called any more
		ended   = make(chan error, 1)
		lastErr atomic.Pointer[error] // what the consumer reported last
	)
	// A callback rather than an iterator: the iterator's Next costs a
	// timer and a select for every record, which members applying tens of
	// thousands of records a second noticed.
	handle := func(msg jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		r, err := decode(msg)
		if err != nil {
			err = final{fmt.Errorf("jetlog: read %s from %d: %w", l.name, from, err)}
		} else if err = fn(r); err != nil {
			err = final{err}
		}
		if err != nil {
			stopped = true
			ended <- err
		}
	}
	// Short pull requests with frequent heartbeats: a reader falling behind
	// under load was seen to stop receiving while the client still counted
	// on an outstanding pull request, until two heartbeats went missing (ten
	// seconds with the defaults, one second with these).
	cc, err := cons.Consume(handle, jetstream.PullHeartbeat(500*time.Millisecond), jetstream.PullExpiry(2*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// The ordered consumer recovers by itself from most of what
			// it reports here, and a closed connection closes it; Read
			// replaces a reader that stalls, and says why it may have.
			lastErr.Store(&err)
		}))
	if err != nil {
		return fmt.Errorf("jetlog: read %s from %d: %w", l.name, from, err)
	}
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case err = <-ended:
	case <-cc.Closed():
		err = fmt.Errorf("jetlog: read %s from %d: %w", l.name, from, jetstream.ErrMsgIteratorClosed)
	}
	cc.Stop()
	mu.Lock()
	stopped = true
	mu.Unlock()
	// fn may have failed while ctx ended: its error ends Read all the same.
	select {
	case ferr := <-ended:
		err = ferr
	default:
	}
	if p := lastErr.Load(); p != nil && !errors.As(err, new(final)) {
		err = fmt.Errorf("%w (the consumer last reported: %v)", err, *p)
	}
	return err
}

// deleteConsumer removes the server side of a finished read at once rather
// than leaving it to the inactivity threshold, because recent servers limit
// the consumers of a stream.
func (l *Log) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Best effort: an unreachable server drops the consumer by itself.
	_ = l.stream.DeleteConsumer(ctx, info.Name)
}

// decode turns a stream message into a record. A message whose headers
// cannot be decoded gives a record with Err set: every reader sees the same
// message, so every reader skips it alike. Only a message without stream
// metadata, which JetStream never delivers, is an error.
func decode(msg jetstream.Msg) (vpeer.Record, error) {
	seq, ok := streamSeq(msg.Reply())
	if !ok {
		return vpeer.Record{}, fmt.Errorf("message on %s without stream metadata: reply subject %q", msg.Subject(), msg.Reply())
	}
	return record(seq, msg.Headers(), msg.Data()), nil
}

// RawRecord is the record a message read directly from a log's stream
// holds (jetstream.Stream.GetMsg), as a member would read it: for audits
// of the log.
func RawRecord(m *jetstream.RawStreamMsg) vpeer.Record {
	return record(m.Sequence, m.Header, m.Data)
}

func record(seq uint64, h nats.Header, data []byte) vpeer.Record {
	r := vpeer.Record{
		Seq:     seq,
		ID:      h.Get(jetstream.MsgIDHeader),
		ReplyTo: h.Get(HeaderReplyTo),
		Payload: data,
	}
	if v := h.Get(HeaderTerm); v != "" {
		term, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			r.Err = fmt.Errorf("record %d: %s header %q: %w", r.Seq, HeaderTerm, v, err)
			return r
		}
		r.Term = term
	}
	if v := h.Get(HeaderTick); v != "" {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			r.Err = fmt.Errorf("record %d: %s header %q: %w", r.Seq, HeaderTick, v, err)
			return r
		}
		r.Tick = time.Unix(0, ns).UTC()
	}
	switch v := h.Get(HeaderSnapshot); v {
	case "":
	case "1":
		r.Snapshot = true
	default:
		r.Err = fmt.Errorf("record %d: %s header %q", r.Seq, HeaderSnapshot, v)
		return r
	}
	switch v := h.Get(HeaderBatch); v {
	case "":
	case batchFormat:
		b, err := decodeBatch(r.Payload)
		if err != nil {
			r.Err = fmt.Errorf("record %d: %w", r.Seq, err)
			return r
		}
		r.Batch, r.Payload = b, nil
	default:
		r.Err = fmt.Errorf("record %d: %s header %q: a batch format this member does not read", r.Seq, HeaderBatch, v)
	}
	return r
}

// streamSeq reads a message's stream sequence number from its reply
// subject, as Msg.Metadata does but without allocating: every member reads
// it for every record. The subject is $JS.ACK.<stream>.<consumer>.
// <delivered>.<stream seq>.<consumer seq>.<time>.<pending>, with
// <domain>.<account hash> after $JS.ACK and a token at the end on newer
// servers.
func streamSeq(reply string) (uint64, bool) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return 0, false
	}
	skip := 3 // stream, consumer, delivered
	switch n := strings.Count(rest, ".") + 3; {
	case n == 9:
	case n >= 11:
		skip += 2
	default:
		return 0, false
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	tok, _, _ := strings.Cut(rest, ".")
	seq, err := strconv.ParseUint(tok, 10, 64)
	return seq, err == nil && seq > 0
}

// Trim purges the records up to and including seq from the stream.
func (l *Log) Trim(ctx context.Context, seq uint64) error {
	if err := l.stream.Purge(ctx, jetstream.WithPurgeSequence(seq+1)); err != nil {
		return fmt.Errorf("jetlog: trim %s up to %d: %w", l.name, seq, err)
	}
	return nil
}

// LastSeq returns the sequence number of the newest record, 0 when empty.
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("jetlog: last sequence of %s: %w", l.name, err)
	}
	return info.State.LastSeq, nil
}
