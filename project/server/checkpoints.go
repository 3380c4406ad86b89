package server

import (
	"context"
	"github.com/momonga-project/momonga/project/sched"
	"time"

	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// checkCheckpoint makes sure that a checkpoint a host reports is stored
// whole (and its base, for a delta) and that its header, under a valid
// checksum, says what the report says: the scheduler records only
// checkpoints another host can resume from.
func (g *gateway) checkCheckpoint(ctx context.Context, r wu.CheckpointReport) error {
	c := r.Checkpoint
	if err := g.checkBlob(ctx, c.Hash, c.Size, "checkpoint"); err != nil {
		return err
	}
	if c.Base != "" {
		if err := g.checkBlob(ctx, c.Base, c.BaseSize, "checkpoint base"); err != nil {
			return err
		}
	}
	b, err := g.blobs.Get(ctx, c.Hash)
	if err != nil {
		return err
	}
	h, _, err := wu.ParseCheckpoint(b)
	if err != nil {
		return err
	}
	return r.Matches(h)
}

// gcInterval is how often the project deletes the checkpoints that the
// scheduler no longer needs.
const gcInterval = 5 * time.Second

// collectCheckpoints deletes the checkpoint blobs on the scheduler's
// garbage list, then appends OpCkptDropped so that the list empties on every
// member. It is a side effect that must happen once, so it belongs to the
// lease holder (DESIGN §5): in a cluster, the process whose member holds
// it. Deleting is idempotent, so a round cut short, or one that overlaps
// with a new holder's, is simply repeated.
func (s *Server) collectCheckpoints(ctx context.Context, log vpeer.Log, store *blobs.Store) {
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.group.Leading() {
			continue
		}
		var garbage []wu.Hash
		_ = s.query(func(m *sched.Machine) { garbage = m.Garbage() })
		if len(garbage) == 0 {
			continue
		}
		var dropped []wu.Hash
		for _, h := range garbage {
			if err := store.Delete(ctx, h); err != nil {
				s.cfg.Logger.Warn("delete old checkpoint", "blob", h.Short(), "err", err)
				continue
			}
			dropped = append(dropped, h)
		}
		cmd := wu.Command{V: wu.WireVersion, Op: wu.OpCkptDropped, Body: wu.Encode(wu.CheckpointsDropped{V: wu.WireVersion, Hashes: dropped})}
		if _, err := log.Append(ctx, vpeer.Record{Payload: wu.Encode(cmd)}); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("record deleted checkpoints", "err", err)
		}
	}
}
