package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
)

// startElsewhere starts the gateway of a server whose members all run in
// other processes (Config.MembersElsewhere): the log, snapshot store and
// registry are open and the group's spec written; nothing here applies the
// log.
func (s *Server) startElsewhere(ctx context.Context, js jetstream.JetStream) error {
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		<-runCtx.Done()
		close(s.done)
	}()
	return s.startGateway(ctx, runCtx, js)
}

// WaitForMembers waits until a member of the scheduler's virtual peer, in
// any process, is ready and has applied a tick: from then on requests are
// answered. It is how a server with Config.MembersElsewhere knows its
// members have come; it asks the members' processes for their status.
func (s *Server) WaitForMembers(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		reports, err := jetlog.GatherStatus(ctx, s.nc, Group, 50*time.Millisecond)
		if err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("wait for the scheduler's members: %w", err)
		}
		for _, g := range vpeer.Summarize(reports) {
			for _, m := range g.Members {
				if m.Ready && !m.Time.IsZero() {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no member of the scheduler's virtual peer ready with a tick: %w", ctx.Err())
		case <-t.C:
		}
	}
}
