package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

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
	for subj, fn := range map[string]func(context.Context, *nats.Msg){
		"vol.*.*":              g.volunteer,
		"vol.*.blob.*":         g.blob,
		wu.SubjectAdminCommand: g.admin,
		wu.SubjectAdminStatus:  g.adminStatus,
		wu.SubjectAdminResults: g.adminResults,
	} {
		s, err := nc.QueueSubscribe(subj, "gateway", g.handle(ctx, fn))
		if err != nil {
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

// volunteer handles vol.H.{hello,work,beat,result,ckpt}.
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
	case wu.OpCkpt:
		var r wu.CheckpointReport
		r, err = wu.Decode[wu.CheckpointReport](msg.Data)
		seq = r.Seq
		if err == nil {
			err = g.checkCheckpoint(ctx, r)
		}
	default:
		err = wu.Errorf(wu.CodeBadRequest, "unknown operation %q", op)
	}
	if err != nil {
		respondError(msg, err)
		return
	}
	g.append(ctx, msg, wu.Command{V: wu.WireVersion, Op: op, Host: host, Seq: seq, Body: msg.Data})
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
			err = g.checkBlob(ctx, r.Hash, r.Size, "app")
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
		err = wu.Errorf(wu.CodeBadRequest, "%q is not an admin operation", cmd.Op)
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
