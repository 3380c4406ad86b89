package workunits

// Messages about checkpoints (DESIGN §4, §6). A host uploads a checkpoint
// blob with vol.H.blob.put, then tells the project with vol.H.ckpt; the
// scheduler keeps the newest valid checkpoint of each task (and the full
// checkpoint a delta needs) and hands it out with the task when the task
// goes to another host.

// Checkpoint operations.
const (
	OpCkpt = "ckpt" // vol.H.ckpt: a CheckpointReport → Ack
	// OpCkptDropped is appended by the project itself once it has deleted
	// checkpoint blobs that the scheduler no longer needs.
	OpCkptDropped = "ckpt.dropped"
)

// CheckpointRef names a stored checkpoint and what it holds.
type CheckpointRef struct {
	Hash       Hash    `json:"hash"`
	Size       int64   `json:"size"`
	Seq        uint64  `json:"seq"`
	Base       Hash    `json:"base,omitempty"`      // for a delta: the full checkpoint it needs
	BaseSize   int64   `json:"base_size,omitempty"` // and its size
	Progress   float64 `json:"progress,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// Blobs lists the blobs needed to restore the checkpoint, base first.
func (r *CheckpointRef) Blobs() []Hash {
	if r.Base != "" {
		return []Hash{r.Base, r.Hash}
	}
	return []Hash{r.Hash}
}

func (r *CheckpointRef) validate() error {
	switch {
	case !r.Hash.Valid():
		return Errorf(CodeBadRequest, "checkpoint hash %q is not a sha-256", r.Hash)
	case r.Size <= 0 || r.Size > MaxCheckpointBytes || r.BaseSize < 0 || r.BaseSize > MaxCheckpointBytes:
		return Errorf(CodeBadRequest, "checkpoint size out of range")
	case r.Seq == 0:
		return Errorf(CodeBadRequest, "checkpoint without a sequence number")
	case r.Base != "" && (!r.Base.Valid() || r.BaseSize <= 0):
		return Errorf(CodeBadRequest, "delta checkpoint with a malformed base")
	case r.Base == "" && r.BaseSize != 0:
		return Errorf(CodeBadRequest, "base size without a base")
	case r.Progress < 0 || r.Progress > 1 || r.CPUSeconds < 0:
		return Errorf(CodeBadRequest, "checkpoint progress or cpu time out of range")
	}
	return nil
}

// CheckpointReport tells the project that a task's checkpoint is uploaded.
type CheckpointReport struct {
	V          int           `json:"v"`
	Seq        uint64        `json:"seq"`
	Task       string        `json:"task"`
	App        Hash          `json:"app"`
	Checkpoint CheckpointRef `json:"checkpoint"`
}

func (m *CheckpointReport) Validate() error {
	if m.Seq == 0 {
		return Errorf(CodeBadRequest, "checkpoint report without seq")
	}
	if m.Task == "" || len(m.Task) > 2*MaxNameBytes {
		return Errorf(CodeBadRequest, "checkpoint report names a malformed task")
	}
	if !m.App.Valid() {
		return Errorf(CodeBadRequest, "checkpoint report names no valid app hash")
	}
	return m.Checkpoint.validate()
}

// Matches checks that a checkpoint blob's header says what the report says.
func (m *CheckpointReport) Matches(h CheckpointHeader) error {
	if err := h.Check(m.App, m.Task); err != nil {
		return err
	}
	c := m.Checkpoint
	if h.Seq != c.Seq || h.Base != c.Base || h.Progress != c.Progress || h.CPUSeconds != c.CPUSeconds {
		return Errorf(CodeBadRequest, "checkpoint report does not match the uploaded checkpoint's header")
	}
	return nil
}

// CheckpointsDropped lists checkpoint blobs the project has deleted.
type CheckpointsDropped struct {
	V      int    `json:"v"`
	Hashes []Hash `json:"hashes"`
}

func (m *CheckpointsDropped) Validate() error {
	for _, h := range m.Hashes {
		if !h.Valid() {
			return Errorf(CodeBadRequest, "dropped checkpoint %q is not a sha-256", h)
		}
	}
	return nil
}
