package jetlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/vpeer"
)

// Subjects a process running members of a group answers on. Every process
// answers a status request, so the requester gathers the answers that come
// within a short while; one process answers a snapshot request.
const (
	SubjectStatusAll = "vpeer.status" // every group's processes
)

// SubjectStatus is where the processes of group answer status requests.
func SubjectStatus(group string) string { return "vpeer." + group + ".status" }

// SubjectSnapshot is where one process of group answers a request for a
// snapshot now with SnapshotReply.
func SubjectSnapshot(group string) string { return "vpeer." + group + ".snapshot" }

// SnapshotReply answers a snapshot request: the sequence number of the
// snapshot point appended, at which every member records its state hash
// and the lease holder stores a snapshot.
type SnapshotReply struct {
	Seq   uint64 `json:"seq,omitempty"`
	Error string `json:"error,omitempty"`
}

// ServeGroup answers status and snapshot requests for g, whose log is l,
// until ctx is done.
func ServeGroup(ctx context.Context, nc *nats.Conn, g *vpeer.Group, l vpeer.Log) error {
	status := func(msg *nats.Msg) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		b, _ := json.Marshal(g.Status(ctx))
		_ = msg.Respond(b)
	}
	snapshot := func(msg *nats.Msg) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var rep SnapshotReply
		seq, err := vpeer.MarkSnapshot(ctx, l)
		if err != nil {
			rep.Error = err.Error()
		}
		rep.Seq = seq
		b, _ := json.Marshal(rep)
		_ = msg.Respond(b)
	}
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, sub := range []struct {
		subject, queue string
		fn             nats.MsgHandler
	}{
		{SubjectStatusAll, "", status},
		{SubjectStatus(g.Name()), "", status},
		{SubjectSnapshot(g.Name()), "vpeer-snapshot", snapshot},
	} {
		s, err := nc.QueueSubscribe(sub.subject, sub.queue, sub.fn)
		if err != nil {
			return fmt.Errorf("jetlog: serve group %s: %w", g.Name(), err)
		}
		subs = append(subs, s)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("jetlog: serve group %s: %w", g.Name(), err)
	}
	<-ctx.Done()
	return nil
}

// GatherStatus asks the processes of group (every group when group is
// "") for their status and returns the answers that arrive before quiet
// passes without one, or before ctx is done.
func GatherStatus(ctx context.Context, nc *nats.Conn, group string, quiet time.Duration) ([]vpeer.ProcessStatus, error) {
	subject := SubjectStatusAll
	if group != "" {
		subject = SubjectStatus(group)
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	var all []vpeer.ProcessStatus
	wait := 5 * quiet // the first answer may take longer
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return all, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return all, nil
			}
			return all, err
		}
		var st vpeer.ProcessStatus
		if err := json.Unmarshal(msg.Data, &st); err != nil {
			return all, fmt.Errorf("malformed status from a member process: %w", err)
		}
		all = append(all, st)
		wait = quiet
	}
}

// RequestSnapshot asks the processes of group to append a snapshot point
// and returns its sequence number.
func RequestSnapshot(ctx context.Context, nc *nats.Conn, group string) (uint64, error) {
	msg, err := nc.RequestWithContext(ctx, SubjectSnapshot(group), nil)
	if err != nil {
		return 0, fmt.Errorf("snapshot of group %s: %w", group, err)
	}
	var rep SnapshotReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return 0, fmt.Errorf("snapshot of group %s: malformed reply: %w", group, err)
	}
	if rep.Error != "" {
		return 0, fmt.Errorf("snapshot of group %s: %s", group, rep.Error)
	}
	return rep.Seq, nil
}
