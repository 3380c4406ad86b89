package workunits

import "time"

// App is a WebAssembly module published by the project, addressed by hash.
type App struct {
	Name  string    `json:"name"`
	Hash  Hash      `json:"hash"`
	Size  int64     `json:"size"`
	Added time.Time `json:"added"`
}

// Limits bound what one task of a work unit may use on a volunteer's host.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes,omitempty"` // linear memory of the module
	OutputBytes int64   `json:"output_bytes,omitempty"` // stdout, which is the result
	MaxSeconds  float64 `json:"max_seconds,omitempty"`  // wall time of one run before it is killed
}

// Default limits, used where a work unit leaves one unset.
const (
	DefaultMemoryBytes = 256 << 20
	DefaultOutputBytes = 16 << 20
	DefaultMaxSeconds  = 3600
	MaxMemoryBytes     = 4 << 30
	MaxOutputBytes     = 256 << 20
)

// WithDefaults fills unset limits with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.OutputBytes <= 0 {
		l.OutputBytes = DefaultOutputBytes
	}
	if l.MaxSeconds <= 0 {
		l.MaxSeconds = DefaultMaxSeconds
	}
	return l
}

// Validate checks that the limits are within what a host can be asked for.
func (l Limits) Validate() error {
	switch {
	case l.MemoryBytes < 0 || l.MemoryBytes > MaxMemoryBytes:
		return Errorf(CodeBadRequest, "memory limit %d is outside 0..%d bytes", l.MemoryBytes, int64(MaxMemoryBytes))
	case l.OutputBytes < 0 || l.OutputBytes > MaxOutputBytes:
		return Errorf(CodeBadRequest, "output limit %d is outside 0..%d bytes", l.OutputBytes, int64(MaxOutputBytes))
	case l.MaxSeconds < 0 || l.MaxSeconds > 30*24*3600:
		return Errorf(CodeBadRequest, "time limit %g s is outside 0..30 days", l.MaxSeconds)
	}
	return nil
}

// WorkUnitState is where a work unit is in its life.
type WorkUnitState string

// Work-unit states (DESIGN §3).
const (
	WorkUnitPending WorkUnitState = "pending" // replicas are out or waiting
	WorkUnitValid   WorkUnitState = "valid"   // quorum results agreed; Canonical is set
	WorkUnitError   WorkUnitState = "error"   // too many failures or disagreements
)

// TaskState is where one replica of a work unit is.
type TaskState string

// Task states (DESIGN §3): unsent → assigned → reported, or assigned → unsent
// again when the lease runs out, and cancelled when the work unit no longer
// needs it.
const (
	TaskUnsent    TaskState = "unsent"
	TaskAssigned  TaskState = "assigned"
	TaskReported  TaskState = "reported"
	TaskCancelled TaskState = "cancelled"
)

// Outcome is how a reported task ended on its host.
type Outcome string

// Task outcomes.
const (
	OutcomeSuccess Outcome = "success" // the app exited 0; Output holds its result
	OutcomeFailure Outcome = "failure" // the app failed or was stopped; Reason says why
)

// Validity is what validation made of a reported result.
type Validity string

// Validity of a reported task.
const (
	ValidityUnknown Validity = ""        // not yet judged
	ValidityValid   Validity = "valid"   // agreed with the canonical result
	ValidityInvalid Validity = "invalid" // disagreed, or failed
)
