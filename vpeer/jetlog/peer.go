package jetlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
)

// Peer names the JetStream assets of one virtual peer: its log's stream
// and subject, its snapshots' object store, and the membership bucket it
// may share with other peers.
type Peer struct {
	Stream, Subject, Snapshots, Registry string
}

// Assets are a virtual peer's log, snapshot store and registry.
type Assets struct {
	Log       *Log
	Snapshots *Snapshots
	Registry  *Registry
}

// Open creates the assets p names with the given replication, or opens
// them when they exist: what the process serving a project does.
func (p Peer) Open(ctx context.Context, js jetstream.JetStream, replicas int) (a Assets, err error) {
	if a.Log, err = Open(ctx, js, Config{Stream: p.Stream, Subject: p.Subject, Replicas: replicas, Storage: jetstream.FileStorage}); err != nil {
		return a, err
	}
	if a.Snapshots, err = OpenSnapshots(ctx, js, p.Snapshots, replicas); err != nil {
		return a, err
	}
	a.Registry, err = OpenRegistry(ctx, js, p.Registry, replicas)
	return a, err
}

// Bind finds the assets p names, which must exist: what a process joining
// a running project does.
func (p Peer) Bind(ctx context.Context, js jetstream.JetStream) (a Assets, err error) {
	if a.Log, err = Bind(ctx, js, p.Stream); err != nil {
		return a, err
	}
	if a.Snapshots, err = BindSnapshots(ctx, js, p.Snapshots); err != nil {
		return a, err
	}
	a.Registry, err = BindRegistry(ctx, js, p.Registry)
	return a, err
}

// WaitServing waits until a member of group, in any process reachable on
// nc, is ready and has applied a tick: from then on the group answers
// requests. It asks the members' processes for their status, so it suits a
// process that runs none of the group's members itself.
func WaitServing(ctx context.Context, nc *nats.Conn, group string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		reports, err := GatherStatus(ctx, nc, group, 50*time.Millisecond)
		if err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("wait for the members of %s: %w", group, err)
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
			return fmt.Errorf("no member of virtual peer %s ready with a tick: %w", group, ctx.Err())
		case <-t.C:
		}
	}
}
