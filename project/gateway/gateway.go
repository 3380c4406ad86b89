// Package gateway is what volunteers and the project's tools talk to
// (DESIGN §1, §4): it admits their requests (rate limits per host, signed
// apps, well-formed bodies, blobs that are really stored), turns them into
// records of the scheduler's log, whose members send the replies, and
// serves blob transfers and read-only queries itself. A malformed request
// gets an error and never reaches the log.
//
// The gateway sees the scheduler's log, the blob store, the uploads in
// progress, the rate limiter and the project's reads only through the small
// interfaces below, so its tests run on vpeer's in-memory log and
// blobs.Mem, with no NATS server. Requests are nats.Msg values; the
// gateway's own answers go out through a Publisher (the connection it
// serves on).
package gateway

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Log is the scheduler's log, where admitted requests go.
type Log interface {
	Append(ctx context.Context, r vpeer.Record) (uint64, error)
}

// Blobs is the project's blob store.
type Blobs interface {
	Size(ctx context.Context, h wu.Hash) (int64, bool, error)
	Get(ctx context.Context, h wu.Hash) ([]byte, error)
	Chunk(ctx context.Context, h wu.Hash, offset int64) ([]byte, int64, error)
}

// Uploads stages chunked uploads until they are whole and stores them
// (blobs.Uploads, blobs.MemUploads).
type Uploads interface {
	Chunk(ctx context.Context, uploader string, h wu.Hash, size, offset int64, data []byte) (int64, error)
}

// Reads answers the tools' read-only queries from the project's state.
type Reads interface {
	Status() wu.StatusReply
	Results(q wu.ResultsQuery) (wu.ResultsReply, error)
	Accounts() wu.AccountsReply
	Credit(host string) wu.CreditReply
}

// Limiter decides whether a host may make one more request.
type Limiter interface {
	Allow(key string) Decision
}

// Publisher sends a message: the gateway's own answers.
type Publisher interface {
	PublishMsg(m *nats.Msg) error
}

// Config connects a gateway to its project.
type Config struct {
	Log     Log
	Blobs   Blobs
	Uploads Uploads
	Reads   Reads
	Publish Publisher
	// SigningKey is the key apps must be signed with; nil refuses every
	// app.
	SigningKey ed25519.PublicKey
	// Limiter bounds each host's requests; nil: no bound.
	Limiter Limiter
	// OnFlood hears of a host that kept sending while refused.
	OnFlood func(host string)
	// InFlight bounds the volunteers' requests Subscribe handles at once;
	// default 256. ToolsInFlight bounds the project's own tools' apart
	// (default 16), so that they are not queued behind thousands of hosts
	// saying hello after a restart.
	InFlight      int
	ToolsInFlight int
	// Batch groups the requests arriving together into one record of the
	// log (batch.go).
	Batch  Batching
	Logger *slog.Logger
}

// Gateway serves a project's volunteers and tools.
type Gateway struct {
	cfg       Config
	slots     chan struct{} // volunteers' requests in flight
	toolSlots chan struct{} // the tools' requests in flight
	batch     *batcher
	wg        sync.WaitGroup
	refused   refusals
}

// New returns a gateway for cfg.
func New(cfg Config) *Gateway {
	if cfg.InFlight <= 0 {
		cfg.InFlight = 256
	}
	if cfg.ToolsInFlight <= 0 {
		cfg.ToolsInFlight = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gateway{cfg: cfg, slots: make(chan struct{}, cfg.InFlight), toolSlots: make(chan struct{}, cfg.ToolsInFlight),
		batch: newBatcher(cfg.Log, cfg.Batch)}
}

// Subjects the gateway serves, as NATS subscriptions.
var subjects = []string{"vol.*.*", "vol.*.blob.*", wu.SubjectAttachPrefix + "*",
	wu.SubjectAdminCommand, wu.SubjectAdminStatus, wu.SubjectAdminResults, wu.SubjectAdminAccounts}

// route finds what handles subject, and how a refusal is answered there.
func (g *Gateway) route(subject string) (handle func(context.Context, *nats.Msg), refuse func(*nats.Msg, error), limited bool) {
	switch {
	case strings.HasPrefix(subject, "vol."):
		if _, op, ok := wu.ParseVolunteerSubject(subject); ok && strings.HasPrefix(op, "blob.") {
			return g.blob, g.refuseBlob, true
		}
		return g.volunteer, g.refuse, true
	case strings.HasPrefix(subject, wu.SubjectAttachPrefix):
		return g.attach, g.refuse, true
	case subject == wu.SubjectAdminCommand:
		return g.admin, g.refuse, false
	case subject == wu.SubjectAdminStatus:
		return g.status, g.refuse, false
	case subject == wu.SubjectAdminResults:
		return g.results, g.refuse, false
	case subject == wu.SubjectAdminAccounts:
		return g.accounts, g.refuse, false
	}
	return func(_ context.Context, msg *nats.Msg) {
		g.refuse(msg, wu.Errorf(wu.CodeBadRequest, "no such subject %q", msg.Subject))
	}, g.refuse, false
}

// admit applies the host's rate limit; false means the request is
// answered (refused, or dropped as part of a flood) and goes no further.
func (g *Gateway) admit(msg *nats.Msg, refuse func(*nats.Msg, error)) bool {
	if g.cfg.Limiter == nil {
		return true
	}
	key := limitKey(msg.Subject)
	d := g.cfg.Limiter.Allow(key)
	switch {
	case d.Allowed:
		return true
	case d.Flooding:
		g.refused.flood()
		g.cfg.Logger.Warn("host floods the gateway", "host", key)
		if g.cfg.OnFlood != nil {
			g.cfg.OnFlood(key)
		}
	case !d.Silent:
		refuse(msg, wu.Errorf(wu.CodeRateLimited, "too many requests from %s: retry in %.1f s", key, retrySeconds(d)))
	}
	return false
}

// Serve handles one request in the calling goroutine.
func (g *Gateway) Serve(ctx context.Context, msg *nats.Msg) {
	handle, refuse, limited := g.route(msg.Subject)
	if limited && !g.admit(msg, refuse) {
		return
	}
	handle(ctx, msg)
}

// Subscribe serves the gateway's subjects on nc, in the queue group
// "gateway", until ctx is done. Each request is admitted in the
// subscription's callback, so that a flood is refused at the cost of a
// token-bucket check. A volunteer's frequent requests that wait on nothing
// (quick) are handled there too; the others in a goroutine of their own,
// InFlight at most (ToolsInFlight for the tools'), so that a slow blob
// store does not hold up the subscription.
func (g *Gateway) Subscribe(ctx context.Context, nc *nats.Conn) error {
	for _, subj := range subjects {
		s, err := nc.QueueSubscribe(subj, "gateway", func(msg *nats.Msg) {
			handle, refuse, limited := g.route(msg.Subject)
			if limited && !g.admit(msg, refuse) {
				return
			}
			if quick(msg.Subject) {
				handle(ctx, msg)
				return
			}
			// Rate-limited requests are the volunteers' (attaching
			// included), the others the project's own tools'.
			slots := g.slots
			if !limited {
				slots = g.toolSlots
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			g.wg.Add(1)
			go func() {
				defer func() { <-slots; g.wg.Done() }()
				handle(ctx, msg)
			}()
		})
		if err != nil {
			return err
		}
		// A flood from one host must be read and refused, not dropped
		// with everyone else's requests when the buffer is full: room for
		// a second of a fast flood.
		if err := s.SetPendingLimits(1<<20, 256<<20); err != nil {
			return err
		}
	}
	return nc.Flush()
}

// quick reports whether a request on subject is handled without waiting
// on anything, not even the log: a volunteer's request whose body alone is
// checked. It is handled in the subscription's callback, which saves a
// goroutine for each of the most frequent requests.
func quick(subject string) bool {
	_, op, ok := wu.ParseVolunteerSubject(subject)
	switch {
	case !ok || !strings.HasPrefix(subject, "vol."):
		return false
	case op == wu.OpWork, op == wu.OpBeat, op == wu.OpHello, op == wu.OpCredit:
		return true
	}
	return false
}

// Wait waits for the requests in flight to be handled.
func (g *Gateway) Wait() {
	g.wg.Wait()
	g.batch.wait()
}

// respond sends data to msg's requester.
func (g *Gateway) respond(msg *nats.Msg, data []byte) {
	g.publish(&nats.Msg{Subject: msg.Reply, Data: data})
}

// refuse answers err in the Ack every reply type starts with.
func (g *Gateway) refuse(msg *nats.Msg, err error) {
	e := asError(err)
	g.refused.add(e.Code)
	g.respond(msg, wu.Encode(wu.Ack{V: wu.WireVersion, Error: e}))
}

func asError(err error) *wu.Error {
	var e *wu.Error
	if !errors.As(err, &e) {
		e = wu.Errorf(wu.CodeInternal, "%v", err)
	}
	return e
}

// volunteer handles vol.H.{hello,work,beat,result,ckpt,credit}.
func (g *Gateway) volunteer(ctx context.Context, msg *nats.Msg) {
	host, op, ok := wu.ParseVolunteerSubject(msg.Subject)
	if !ok {
		g.refuse(msg, wu.Errorf(wu.CodeBadRequest, "malformed subject %q", msg.Subject))
		return
	}
	if op == wu.OpCredit {
		// A read: answered here, not recorded in the log.
		if _, err := wu.Decode[wu.CreditRequest](msg.Data); err != nil {
			g.refuse(msg, err)
			return
		}
		g.respond(msg, wu.Encode(g.cfg.Reads.Credit(host)))
		return
	}
	seq, err := g.checkVolunteer(ctx, op, msg.Data)
	if err != nil {
		g.refuse(msg, err)
		return
	}
	g.append(msg, wu.Command{V: wu.WireVersion, Op: op, Host: host, Seq: seq, Body: msg.Data})
}

// checkVolunteer admits the body of a volunteer's request for op and
// returns the sequence number it carries.
func (g *Gateway) checkVolunteer(ctx context.Context, op string, data []byte) (seq uint64, err error) {
	switch op {
	case wu.OpHello:
		_, err = wu.Decode[wu.Hello](data)
	case wu.OpWork:
		var r wu.WorkRequest
		r, err = wu.Decode[wu.WorkRequest](data)
		seq = r.Seq
	case wu.OpBeat:
		var r wu.Beat
		r, err = wu.Decode[wu.Beat](data)
		seq = r.Seq
	case wu.OpResult:
		var r wu.Report
		r, err = wu.Decode[wu.Report](data)
		seq = r.Seq
		if err == nil && r.Outcome == wu.OutcomeSuccess {
			err = g.checkBlob(ctx, r.Output, r.OutputSize, "output")
		}
	case wu.OpAccount:
		// Unnumbered: setting the same thing twice does no harm.
		var r wu.UserSet
		if r, err = wu.Decode[wu.UserSet](data); err == nil && r.User != "" {
			err = wu.Errorf(wu.CodeForbidden, "a host changes its own user's settings only: name no user")
		}
	case wu.OpCkpt:
		var r wu.CheckpointReport
		r, err = wu.Decode[wu.CheckpointReport](data)
		seq = r.Seq
		if err == nil {
			err = g.checkCheckpoint(ctx, r)
		}
	default:
		err = wu.Errorf(wu.CodeBadRequest, "unknown operation %q", op)
	}
	return seq, err
}

// append puts an admitted command into the log, grouped with others that
// arrive with it (Batching), without waiting for it to be stored. The
// members that apply it send the reply to msg.Reply; if it cannot be
// stored, the gateway answers that it was not.
func (g *Gateway) append(msg *nats.Msg, cmd wu.Command) {
	rec := vpeer.Record{ReplyTo: msg.Reply, Payload: wu.Encode(cmd)}
	if cmd.Seq != 0 {
		// The id makes a re-delivered publish of this very message a no-op;
		// a retry by the requester (a new inbox) is a new record, answered
		// from the state machine's reply cache, as is a request that goes
		// in a batch, whose record has an id of its own.
		rec.ID = cmd.Host + "." + strconv.FormatUint(cmd.Seq, 10) + "." + msg.Reply
	}
	g.batch.appendAsync(rec, func(err error) {
		g.cfg.Logger.Warn("append to scheduler log", "op", cmd.Op, "host", cmd.Host, "err", err)
		g.refuse(msg, wu.Errorf(wu.CodeUnavailable, "the project could not record the request; send it again later"))
	})
}

// admin handles a Command from the project's own tools.
func (g *Gateway) admin(ctx context.Context, msg *nats.Msg) {
	cmd, err := wu.DecodeLimit[wu.Command](msg.Data, wu.MaxAdminMessageBytes)
	if err == nil {
		err = g.checkAdmin(ctx, cmd)
	}
	if err != nil {
		g.refuse(msg, err)
		return
	}
	g.append(msg, cmd)
}

func (g *Gateway) status(_ context.Context, msg *nats.Msg) {
	g.respond(msg, wu.EncodeStatus(g.cfg.Reads.Status(), wu.MaxStatusBytes))
}

func (g *Gateway) results(_ context.Context, msg *nats.Msg) {
	q, err := wu.Decode[wu.ResultsQuery](msg.Data)
	if err != nil {
		g.refuse(msg, err)
		return
	}
	rep, err := g.cfg.Reads.Results(q)
	if err != nil {
		g.refuse(msg, err)
		return
	}
	b, _ := json.Marshal(rep)
	g.respond(msg, b)
}

func (g *Gateway) accounts(_ context.Context, msg *nats.Msg) {
	g.respond(msg, wu.Encode(g.cfg.Reads.Accounts()))
}
