package duties

import (
	"context"

	"github.com/momonga-project/momonga/internal/tick"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// collect deletes the checkpoint blobs on the scheduler's garbage list,
// then appends OpCkptDropped so that the list empties on every member.
// Deleting is idempotent, so a round cut short, or one that overlaps with
// a new holder's, is simply repeated.
func (d *Duties) collect(ctx context.Context) {
	tick.Every(ctx, d.cfg.GCInterval, d.garbage, func() {
		if d.cfg.Sched.Leading() {
			d.collectOnce(ctx)
		}
	})
}

func (d *Duties) collectOnce(ctx context.Context) {
	var garbage []wu.Hash
	_ = d.query(ctx, func(m *sched.Machine) { garbage = m.Garbage() })
	if len(garbage) == 0 {
		return
	}
	var dropped []wu.Hash
	for _, h := range garbage {
		if err := d.cfg.Blobs.Delete(ctx, h); err != nil {
			d.cfg.Logger.Warn("delete old checkpoint", "blob", h.Short(), "err", err)
			continue
		}
		dropped = append(dropped, h)
	}
	if len(dropped) == 0 {
		return
	}
	cmd := wu.Command{V: wu.WireVersion, Op: wu.OpCkptDropped, Body: wu.Encode(wu.CheckpointsDropped{V: wu.WireVersion, Hashes: dropped})}
	if _, err := d.cfg.Sched.Append(ctx, vpeer.Record{Payload: wu.Encode(cmd)}); err != nil && ctx.Err() == nil {
		d.cfg.Logger.Warn("record deleted checkpoints", "err", err)
	}
}
