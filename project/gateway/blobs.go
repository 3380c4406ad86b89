package gateway

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"

	wu "github.com/momonga-project/momonga/workunits"
)

// blob handles vol.H.blob.get and vol.H.blob.put: chunks of
// content-addressed blobs, their hash, offset and size in headers.
func (g *Gateway) blob(ctx context.Context, msg *nats.Msg) {
	host, op, ok := wu.ParseVolunteerSubject(msg.Subject)
	if !ok {
		g.refuseBlob(msg, wu.Errorf(wu.CodeBadRequest, "malformed subject %q", msg.Subject))
		return
	}
	h := wu.Hash(msg.Header.Get(wu.HeaderHash))
	offset, err := strconv.ParseInt(msg.Header.Get(wu.HeaderOffset), 10, 64)
	if err != nil {
		g.refuseBlob(msg, wu.Errorf(wu.CodeBadRequest, "missing or malformed %s header", wu.HeaderOffset))
		return
	}
	reply := nats.NewMsg(msg.Reply)
	switch op {
	case wu.OpBlobGet:
		chunk, size, err := g.cfg.Blobs.Chunk(ctx, h, offset)
		if err != nil {
			g.refuseBlob(msg, err)
			return
		}
		reply.Header.Set(wu.HeaderSize, strconv.FormatInt(size, 10))
		reply.Data = chunk
	case wu.OpBlobPut:
		size, err := strconv.ParseInt(msg.Header.Get(wu.HeaderSize), 10, 64)
		if err != nil {
			g.refuseBlob(msg, wu.Errorf(wu.CodeBadRequest, "missing or malformed %s header", wu.HeaderSize))
			return
		}
		done, err := g.cfg.Uploads.Chunk(ctx, host, h, size, offset, msg.Data)
		if err != nil {
			g.refuseBlob(msg, err)
			return
		}
		reply.Header.Set(wu.HeaderDone, strconv.FormatInt(done, 10))
	default:
		g.refuseBlob(msg, wu.Errorf(wu.CodeBadRequest, "unknown blob operation %q", op))
		return
	}
	g.publish(reply)
}

// refuseBlob answers err in a header, as blob replies carry no body of
// their own.
func (g *Gateway) refuseBlob(msg *nats.Msg, err error) {
	e := asError(err)
	g.refused.add(e.Code)
	reply := nats.NewMsg(msg.Reply)
	reply.Header.Set(wu.HeaderError, wu.HeaderErrorValue(e))
	g.publish(reply)
}

func (g *Gateway) publish(m *nats.Msg) {
	if m.Subject == "" {
		return
	}
	if err := g.cfg.Publish.PublishMsg(m); err != nil {
		g.cfg.Logger.Debug("answer not sent", "subject", m.Subject, "err", err)
	}
}
