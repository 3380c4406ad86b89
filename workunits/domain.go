package workunits

import "time"

// App is a WebAssembly module published by the project, addressed by hash.
type App struct {
	Name  string    `json:"name"`
	Hash  Hash      `json:"hash"`
	Size  int64     `json:"size"`
	Added time.Time `json:"added"`

	Signature string `json:"signature,omitempty"` // the signed manifest (AppSignature), checked by every volunteer
	Policy    Policy `json:"policy,omitzero"`
}

// Policy is how an app's work units are replicated and validated (DESIGN
// §3). A submission may override the replication and quorum.
type Policy struct {
	Replication int  `json:"replication,omitempty"` // replicas of each work unit at first
	Quorum      int  `json:"quorum,omitempty"`      // agreeing results that make a unit valid
	MaxTasks    int  `json:"max_tasks,omitempty"`   // replicas issued at most before the unit is in error; 0: 2·replication+2
	Adaptive    bool `json:"adaptive,omitempty"`    // hosts with a record of valid results get single, spot-checked replicas
	// Tolerance, when fuzzy, compares outputs token by token instead of by
	// hash (floating-point apps).
	Tolerance Tolerance `json:"tolerance,omitzero"`
	// FPOps is the size of a unit that names none: floating-point operations.
	// It caps the credit one result earns.
	FPOps float64 `json:"fpops,omitempty"`
}

// Validate checks a policy's bounds.
func (p Policy) Validate() error {
	if p.Replication < 0 || p.Replication > MaxReplication || p.Quorum < 0 || p.Quorum > MaxReplication {
		return Errorf(CodeBadRequest, "replication and quorum must be within 1..%d", MaxReplication)
	}
	if p.Replication > 0 && p.Quorum > p.Replication {
		return Errorf(CodeBadRequest, "quorum %d is larger than replication %d", p.Quorum, p.Replication)
	}
	if p.MaxTasks < 0 || p.MaxTasks > 4*MaxReplication || p.MaxTasks > 0 && p.MaxTasks < max(p.Replication, p.Quorum) {
		return Errorf(CodeBadRequest, "max tasks %d must be within replication..%d", p.MaxTasks, 4*MaxReplication)
	}
	if !(p.FPOps >= 0 && p.FPOps < 1e30) {
		return Errorf(CodeBadRequest, "fpops %g out of range", p.FPOps)
	}
	return p.Tolerance.Validate()
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
	// WorkUnitCancelled: the project stopped the unit before it was
	// decided (momonga-project cancel).
	WorkUnitCancelled WorkUnitState = "cancelled"
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
