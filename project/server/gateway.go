package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// gateway turns volunteers' and admin tools' requests into log records, and
// serves blob transfers and read-only queries itself. It validates everything
// before it appends: a malformed request gets an error and never reaches the
// log.
type gateway struct {
	log     vpeer.Log
	blobs   *blobs.Store
	uploads *blobs.Uploads
	status  func() wu.StatusReply
	results func(q wu.ResultsQuery) (wu.ResultsReply, error)
	logger  *slog.Logger
	// speculate, when set, answers volunteers before their request is in
	// the log: a broken variant, for tests only.
	speculate func(wu.Command) []byte

	accounts   func() wu.AccountsReply
	signingKey ed25519.PublicKey // apps must be signed with it
	limiter    *auth.RateLimiter // requests per host
	onFlood    func(host string) // a host kept sending while refused

	slots chan struct{} // bounds requests in flight
	wg    sync.WaitGroup
}

// handle runs fn for msg in its own goroutine, bounded by g.slots, so that a
// slow append does not hold up the subscription.
func (g *gateway) handle(ctx context.Context, fn func(context.Context, *nats.Msg)) nats.MsgHandler {
	return func(msg *nats.Msg) {
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		g.wg.Add(1)
		go func() {
			defer func() { <-g.slots; g.wg.Done() }()
			fn(ctx, msg)
		}()
	}
}

func (g *gateway) subscribe(ctx context.Context, nc *nats.Conn) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for subj, h := range map[string]nats.MsgHandler{
		"vol.*.*":                    g.limited(g.handle(ctx, g.volunteer), respondError),
		"vol.*.blob.*":               g.limited(g.handle(ctx, g.blob), respondBlobError),
		wu.SubjectAttachPrefix + "*": g.limited(g.handle(ctx, g.attach), respondError),
		wu.SubjectAdminCommand:       g.handle(ctx, g.admin),
		wu.SubjectAdminStatus:        g.handle(ctx, g.adminStatus),
		wu.SubjectAdminResults:       g.handle(ctx, g.adminResults),
		wu.SubjectAdminAccounts:      g.handle(ctx, g.adminAccounts),
	} {
		s, err := nc.QueueSubscribe(subj, "gateway", h)
		if err != nil {
			return subs, err
		}
		// A flood from one host must be read and refused, not dropped
		// with everyone else's requests when the buffer is full: room for
		// a second of a fast flood.
		if err := s.SetPendingLimits(1<<20, 256<<20); err != nil {
			return subs, err
		}
		subs = append(subs, s)
	}
	return subs, nil
}

func respondError(msg *nats.Msg, err error) {
	var e *wu.Error
	if !errors.As(err, &e) {
		e = wu.Errorf(wu.CodeInternal, "%v", err)
	}
	_ = msg.Respond(wu.Encode(wu.Ack{V: wu.WireVersion, Error: e}))
}

// volunteer handles vol.H.{hello,work,beat,result}.
func (g *gateway) volunteer(ctx context.Context, msg *nats.Msg) {
	host, op, ok := wu.ParseVolunteerSubject(msg.Subject)
	if !ok {
		respondError(msg, wu.Errorf(wu.CodeBadRequest, "malformed subject %q", msg.Subject))
		return
	}
	var seq uint64
	var err error
	switch op {
	case wu.OpHello:
		_, err = wu.Decode[wu.Hello](msg.Data)
	case wu.OpWork:
		var r wu.WorkRequest
		r, err = wu.Decode[wu.WorkRequest](msg.Data)
		seq = r.Seq
	case wu.OpBeat:
		var r wu.Beat
		r, err = wu.Decode[wu.Beat](msg.Data)
		seq = r.Seq
	case wu.OpResult:
		var r wu.Report
		r, err = wu.Decode[wu.Report](msg.Data)
		seq = r.Seq
		if err == nil && r.Outcome == wu.OutcomeSuccess {
			err = g.checkBlob(ctx, r.Output, r.OutputSize, "output")
		}
	default:
		err = wu.Errorf(wu.CodeBadRequest, "unknown operation %q", op)
	}
	if err != nil {
		respondError(msg, err)
		return
	}
	cmd := wu.Command{V: wu.WireVersion, Op: op, Host: host, Seq: seq, Body: msg.Data}
	if g.speculate != nil {
		if reply := g.speculate(cmd); reply != nil {
			_ = msg.Respond(reply)
		}
	}
	g.append(ctx, msg, cmd)
}

// checkBlob makes sure a blob a request refers to is stored, with the size
// the request says.
func (g *gateway) checkBlob(ctx context.Context, h wu.Hash, size int64, what string) error {
	n, ok, err := g.blobs.Size(ctx, h)
	if err != nil {
		return err
	}
	if !ok {
		return wu.Errorf(wu.CodeNotFound, "%s blob %s has not been uploaded", what, h.Short())
	}
	if size >= 0 && n != size {
		return wu.Errorf(wu.CodeBadRequest, "%s blob %s has %d bytes, not %d", what, h.Short(), n, size)
	}
	return nil
}

// checkApp makes sure an app's module is stored and is a module momonga can
// run, whoever sent the request: the command-line tool checks too, but the
// project must not rely on its tools.
func (g *gateway) checkApp(ctx context.Context, r wu.AddApp) error {
	if err := g.checkBlob(ctx, r.Hash, r.Size, "app"); err != nil {
		return err
	}
	module, err := g.blobs.Get(ctx, r.Hash)
	if err != nil {
		return err
	}
	return wu.CheckModule(module)
}

// append puts a checked command into the log. The member that applies it
// sends the reply to msg.Reply.
func (g *gateway) append(ctx context.Context, msg *nats.Msg, cmd wu.Command) {
	rec := vpeer.Record{ReplyTo: msg.Reply, Payload: wu.Encode(cmd)}
	if cmd.Seq != 0 {
		// The id makes a re-delivered publish of this very message a no-op;
		// a retry by the requester (a new inbox) is a new record, answered
		// from the state machine's reply cache.
		rec.ID = cmd.Host + "." + strconv.FormatUint(cmd.Seq, 10) + "." + msg.Reply
	}
	if _, err := g.log.Append(ctx, rec); err != nil && !errors.Is(err, vpeer.ErrDuplicate) {
		g.logger.Warn("append to scheduler log", "op", cmd.Op, "host", cmd.Host, "err", err)
		respondError(msg, wu.Errorf(wu.CodeInternal, "the project could not record the request; retry later"))
	}
}

// blob handles vol.H.blob.get and vol.H.blob.put.
func (g *gateway) blob(ctx context.Context, msg *nats.Msg) {
	host, op, ok := wu.ParseVolunteerSubject(msg.Subject)
	if !ok {
		respondBlobError(msg, wu.Errorf(wu.CodeBadRequest, "malformed subject %q", msg.Subject))
		return
	}
	h := wu.Hash(msg.Header.Get(wu.HeaderHash))
	offset, err := strconv.ParseInt(msg.Header.Get(wu.HeaderOffset), 10, 64)
	if err != nil {
		respondBlobError(msg, wu.Errorf(wu.CodeBadRequest, "missing or malformed %s header", wu.HeaderOffset))
		return
	}
	reply := nats.NewMsg(msg.Reply)
	switch op {
	case wu.OpBlobGet:
		chunk, size, err := g.blobs.Chunk(ctx, h, offset)
		if err != nil {
			respondBlobError(msg, err)
			return
		}
		reply.Header.Set(wu.HeaderSize, strconv.FormatInt(size, 10))
		reply.Data = chunk
	case wu.OpBlobPut:
		size, err := strconv.ParseInt(msg.Header.Get(wu.HeaderSize), 10, 64)
		if err != nil {
			respondBlobError(msg, wu.Errorf(wu.CodeBadRequest, "missing or malformed %s header", wu.HeaderSize))
			return
		}
		done, err := g.uploads.Chunk(ctx, host, h, size, offset, msg.Data)
		if err != nil {
			respondBlobError(msg, err)
			return
		}
		reply.Header.Set(wu.HeaderDone, strconv.FormatInt(done, 10))
	default:
		respondBlobError(msg, wu.Errorf(wu.CodeBadRequest, "unknown blob operation %q", op))
		return
	}
	_ = msg.RespondMsg(reply)
}

func respondBlobError(msg *nats.Msg, err error) {
	var e *wu.Error
	if !errors.As(err, &e) {
		e = wu.Errorf(wu.CodeInternal, "%v", err)
	}
	reply := nats.NewMsg(msg.Reply)
	reply.Header.Set(wu.HeaderError, wu.HeaderErrorValue(e))
	_ = msg.RespondMsg(reply)
}

// admin handles a Command from the project's own tools.
func (g *gateway) admin(ctx context.Context, msg *nats.Msg) {
	cmd, err := wu.DecodeLimit[wu.Command](msg.Data, wu.MaxAdminMessageBytes)
	if err != nil {
		respondError(msg, err)
		return
	}
	switch cmd.Op {
	case wu.OpAddApp:
		var r wu.AddApp
		if r, err = wu.DecodeLimit[wu.AddApp](cmd.Body, wu.MaxAdminMessageBytes); err == nil {
			if err = g.checkSignature(r); err == nil {
				err = g.checkApp(ctx, r)
			}
		}
	case wu.OpSubmit:
		var r wu.Submit
		if r, err = wu.DecodeLimit[wu.Submit](cmd.Body, wu.MaxAdminMessageBytes); err == nil {
			for _, u := range r.Units {
				if u.Stdin == "" {
					continue
				}
				if err = g.checkBlob(ctx, u.Stdin, -1, "input"); err != nil {
					break
				}
			}
		}
	default:
		err = checkAccountCommand(cmd)
	}
	if err != nil {
		respondError(msg, err)
		return
	}
	g.append(ctx, msg, cmd)
}

func (g *gateway) adminStatus(_ context.Context, msg *nats.Msg) {
	_ = msg.Respond(wu.Encode(g.status()))
}

func (g *gateway) adminResults(_ context.Context, msg *nats.Msg) {
	q, err := wu.Decode[wu.ResultsQuery](msg.Data)
	if err != nil {
		respondError(msg, err)
		return
	}
	rep, err := g.results(q)
	if err != nil {
		respondError(msg, err)
		return
	}
	b, _ := json.Marshal(rep)
	_ = msg.Respond(b)
}
