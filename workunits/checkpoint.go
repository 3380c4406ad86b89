package workunits

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
)

// A checkpoint is a task's state at one point of its run, from which any
// volunteer's runner can continue it (DESIGN §6). Its container is framed
// here, with the standard library only, so that the project can check a
// checkpoint's integrity and identity without reading its body:
//
//	magic "MOMOCKPT" | version uint16 | flags uint16 | header length uint32 |
//	header (JSON, CheckpointHeader) | body | sha-256 of everything before it
//
// Integers are little-endian. The body's encoding belongs to the client's
// checkpoint codec (client/checkpoint): compressed memory pages, files and
// output for a memory snapshot, the app's own state file for an app
// checkpoint. A new version may change anything after the version field; a
// reader refuses versions newer than its own.

// CheckpointMagic starts every checkpoint.
const CheckpointMagic = "MOMOCKPT"

// CheckpointVersion is the container format this code writes and the newest
// it reads.
const CheckpointVersion = 1

// MaxCheckpointBytes bounds a checkpoint blob; MaxCheckpointHeaderBytes its
// header.
const (
	MaxCheckpointBytes       = MaxOutputBytes
	MaxCheckpointHeaderBytes = 1 << 20
)

const checkpointFixed = len(CheckpointMagic) + 2 + 2 + 4

// CheckpointKind says how a checkpoint was made.
type CheckpointKind string

// Checkpoint kinds (DESIGN §6).
const (
	CheckpointMemory CheckpointKind = "memory" // a snapshot of a reactor module between two calls of step
	CheckpointApp    CheckpointKind = "app"    // a command module's own state file, written through the SDK
)

// CheckpointHeader says whose state a checkpoint holds and how far the task
// had got. Fields are only ever added.
type CheckpointHeader struct {
	Kind CheckpointKind `json:"kind"`
	App  Hash           `json:"app"`  // sha-256 of the module, as published
	Task string         `json:"task"` // the task whose state this is: replicas never share checkpoints
	// Seq numbers a task's checkpoints from 1, across hosts: a resumed task
	// continues the numbering of the checkpoint it resumed from.
	Seq uint64 `json:"seq"`
	// Base is set on a delta: the checkpoint (a full one) whose pages this one
	// leaves out where they are unchanged.
	Base       Hash    `json:"base,omitempty"`
	Progress   float64 `json:"progress"`    // fraction of the work done, 0..1, as the app reported it
	CPUSeconds float64 `json:"cpu_seconds"` // CPU time the task has used up to here, on every host together
	Steps      uint64  `json:"steps,omitempty"`

	// Memory snapshot: the module's linear memory (its pages are in the
	// body), its mutable globals, and the host-side state it sees.
	MemoryBytes uint64        `json:"memory_bytes,omitempty"`
	PageBytes   uint32        `json:"page_bytes,omitempty"`
	Globals     []GlobalValue `json:"globals,omitempty"`
	Host        *HostState    `json:"host,omitempty"`
}

// GlobalValue is the value of one exported mutable global, as its bits
// (WebAssembly's encoding, which is the same on every CPU).
type GlobalValue struct {
	Name string `json:"name"`
	Type byte   `json:"type"`
	Bits uint64 `json:"bits"`
}

// HostState is what the runner gives a module besides its memory, as far as
// it must be carried to continue bit for bit: virtual clocks, the position in
// the task's random stream and in its stdin, and how much it has written.
// Files of its directory and its output travel in the body.
type HostState struct {
	Walltime    int64  `json:"walltime"`     // ns: the virtual wall clock's last reading
	Nanotime    int64  `json:"nanotime"`     // ns: the virtual monotonic clock's last reading
	RandomBytes uint64 `json:"random_bytes"` // bytes of the task's random stream consumed
	StdinBytes  int64  `json:"stdin_bytes"`  // bytes of stdin consumed
	StdoutBytes int64  `json:"stdout_bytes"` // bytes of output written
}

// Delta reports whether the checkpoint needs its Base to be restored.
func (h *CheckpointHeader) Delta() bool { return h.Base != "" }

// Check refuses a checkpoint made for another app or another task.
func (h *CheckpointHeader) Check(app Hash, task string) error {
	if h.App != app {
		return Errorf(CodeConflict, "checkpoint is of app %s, not %s", h.App.Short(), app.Short())
	}
	if h.Task != task {
		return Errorf(CodeConflict, "checkpoint is of task %q, not %q", h.Task, task)
	}
	return nil
}

func (h *CheckpointHeader) validate() error {
	switch {
	case h.Kind != CheckpointMemory && h.Kind != CheckpointApp:
		return Errorf(CodeBadRequest, "checkpoint of unknown kind %q", h.Kind)
	case !h.App.Valid():
		return Errorf(CodeBadRequest, "checkpoint names no valid app hash")
	case h.Task == "" || len(h.Task) > 2*MaxNameBytes:
		return Errorf(CodeBadRequest, "checkpoint names a malformed task")
	case h.Seq == 0:
		return Errorf(CodeBadRequest, "checkpoint without a sequence number")
	case h.Base != "" && !h.Base.Valid():
		return Errorf(CodeBadRequest, "checkpoint names a malformed base")
	case h.Progress < 0 || h.Progress > 1 || h.CPUSeconds < 0:
		return Errorf(CodeBadRequest, "checkpoint progress or cpu time out of range")
	case h.Kind == CheckpointMemory && (h.Host == nil || h.PageBytes == 0 || h.PageBytes%1024 != 0 || h.PageBytes > 1<<20 || h.MemoryBytes > 1<<32):
		return Errorf(CodeBadRequest, "memory checkpoint with malformed memory geometry or no host state")
	}
	return nil
}

// EncodeCheckpoint frames a header and a body as a checkpoint blob.
func EncodeCheckpoint(h CheckpointHeader, body []byte) []byte {
	hdr := Encode(h)
	out := make([]byte, 0, checkpointFixed+len(hdr)+len(body)+sha256.Size)
	out = append(out, CheckpointMagic...)
	out = binary.LittleEndian.AppendUint16(out, CheckpointVersion)
	out = binary.LittleEndian.AppendUint16(out, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(hdr)))
	out = append(out, hdr...)
	out = append(out, body...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// ParseCheckpoint checks a checkpoint blob's framing, version and checksum
// and returns its header and body (a slice of b). The errors say which check
// failed, in words a volunteer's log can show: every one means the
// checkpoint is not used.
func ParseCheckpoint(b []byte) (CheckpointHeader, []byte, error) {
	var h CheckpointHeader
	if len(b) < len(CheckpointMagic) || string(b[:len(CheckpointMagic)]) != CheckpointMagic {
		if bytes.HasPrefix([]byte(CheckpointMagic), b) {
			return h, nil, Errorf(CodeBadRequest, "checkpoint truncated to %d bytes", len(b))
		}
		return h, nil, Errorf(CodeBadRequest, "not a momonga checkpoint (bad magic)")
	}
	if len(b) < checkpointFixed+sha256.Size {
		return h, nil, Errorf(CodeBadRequest, "checkpoint truncated to %d bytes", len(b))
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v > CheckpointVersion {
		return h, nil, Errorf(CodeBadRequest, "checkpoint format version %d is newer than this program reads (%d): update momonga", v, CheckpointVersion)
	} else if v == 0 {
		return h, nil, Errorf(CodeBadRequest, "checkpoint format version 0 does not exist")
	}
	payload, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(payload); !bytes.Equal(got[:], sum) {
		return h, nil, Errorf(CodeBadRequest, "checkpoint is corrupt or truncated (checksum mismatch)")
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if n > MaxCheckpointHeaderBytes || uint64(n) > uint64(len(payload)-checkpointFixed) {
		return h, nil, Errorf(CodeBadRequest, "checkpoint header length %d out of range", n)
	}
	if err := json.Unmarshal(payload[checkpointFixed:checkpointFixed+int(n)], &h); err != nil {
		return h, nil, Errorf(CodeBadRequest, "checkpoint header is malformed: %v", err)
	}
	if err := h.validate(); err != nil {
		return h, nil, err
	}
	return h, payload[checkpointFixed+int(n):], nil
}
