package sched

import (
	"slices"

	wu "github.com/momonga-project/momonga/workunits"
)

// checkpoint records a task's new checkpoint, reported by the host that
// holds the task after uploading it (the gateway has checked that the blob
// is stored and that its header says what the report says). The scheduler
// keeps the newest checkpoint of each task, and the full checkpoint a delta
// needs; the ones they replace go to the garbage list, which the project
// empties by deleting the blobs (OpCkptDropped). A checkpoint is also a sign
// of life: it renews the task's lease.
func (m *Machine) checkpoint(id string, req wu.CheckpointReport) (*wu.Ack, error) {
	if _, err := m.knownHost(id); err != nil {
		return nil, err
	}
	t := m.st.Tasks[req.Task]
	if t == nil || t.State != wu.TaskAssigned || t.Host != id {
		return nil, wu.Errorf(wu.CodeNotAssigned, "task %q is not assigned to host %s", req.Task, id)
	}
	if u := m.st.Units[t.Unit]; req.App != u.AppHash {
		return nil, wu.Errorf(wu.CodeBadRequest, "checkpoint is of app %s; task %s runs %s", req.App.Short(), t.ID, u.AppHash.Short())
	}
	c := req.Checkpoint
	old := t.Checkpoint
	if old != nil && c.Seq <= old.Seq {
		return nil, wu.Errorf(wu.CodeConflict, "checkpoint %d of task %s is not newer than the project's %d", c.Seq, t.ID, old.Seq)
	}
	// A delta's base is most often the project's checkpoint of the task,
	// but may be a full checkpoint the host wrote and never reported (on a
	// slow link it reports the newest it has when the last upload ends):
	// the gateway has checked that the base is stored. One that the project
	// is deleting will not be.
	if c.Base != "" && (old == nil || c.Base != old.Hash && c.Base != old.Base) && slices.Contains(m.st.Garbage, c.Base) {
		return nil, wu.Errorf(wu.CodeConflict, "checkpoint %d of task %s is a delta against a checkpoint the project is deleting: send a full one", c.Seq, t.ID)
	}
	if old != nil {
		var unneeded []wu.Hash
		for _, h := range old.Blobs() {
			if h != c.Hash && h != c.Base {
				unneeded = append(unneeded, h)
			}
		}
		m.discard(unneeded)
	}
	t.Checkpoint = &c
	t.LeaseUntil = m.st.Now.Add(m.cfg.Lease)
	t.Fraction = c.Progress
	return &wu.Ack{V: wu.WireVersion}, nil
}

// dropCheckpoint forgets the checkpoint of a task that no longer needs one.
func (m *Machine) dropCheckpoint(t *task) {
	if t.Checkpoint != nil {
		m.discard(t.Checkpoint.Blobs())
		t.Checkpoint = nil
	}
}

// discard puts checkpoint blobs no task needs on the garbage list.
func (m *Machine) discard(blobs []wu.Hash) {
	if len(blobs) == 0 {
		return
	}
	m.st.Garbage = append(m.st.Garbage, blobs...)
	m.emit(CheckpointsUnneeded{blobs})
}

// checkpointsDropped removes deleted blobs from the garbage list.
func (m *Machine) checkpointsDropped(_ string, req wu.CheckpointsDropped) (*wu.Ack, error) {
	m.st.Garbage = slices.DeleteFunc(m.st.Garbage, func(h wu.Hash) bool { return slices.Contains(req.Hashes, h) })
	return &wu.Ack{V: wu.WireVersion}, nil
}

// Garbage lists the checkpoint blobs that no task needs any more: the
// lease holder deletes them and then appends OpCkptDropped.
func (m *Machine) Garbage() []wu.Hash {
	return slices.Clone(m.st.Garbage)
}
