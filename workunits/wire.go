package workunits

import (
	"encoding/json"
	"strings"
	"time"
)

// WireVersion is the version this code writes. Readers accept any version:
// fields only ever get added.
const WireVersion = 1

// MaxMessageBytes bounds a control message (everything but blob chunks).
const MaxMessageBytes = 64 << 10

// AuthTimeout is how long a secured project's NATS server waits for a
// connection to be authorised (by the auth callout, for a volunteer's)
// before it refuses it; a volunteer's client waits ConnectTimeout, a little
// longer, for its connection's handshake, so that it never gives up on an
// answer the server still waits for. After a server restarts its hosts
// reconnect at once, thousands of them, and the callout answers them in
// turn: with NATS's defaults (2 s each) all but the first few hundred were
// refused before their turn came, and tried again a reconnect step (15 to
// 30 s) later, the storm lasting minutes.
const (
	AuthTimeout    = 30 * time.Second
	ConnectTimeout = AuthTimeout + 5*time.Second
)

// Operations, as carried in Command.Op and in the last token of a
// volunteer's subject (vol.H.<op>).
const (
	OpHello  = "hello"
	OpWork   = "work"
	OpBeat   = "beat"
	OpResult = "result"
	OpAddApp = "app.add"
	OpSubmit = "submit"
	OpCancel = "cancel" // admin: Cancel → CancelReply
)

// Command is one entry of the scheduler's log: a request as the gateway
// accepted it. Host and Seq identify a volunteer's request so that a retry is
// answered from the first reply instead of being applied twice.
type Command struct {
	V    int             `json:"v"`
	Op   string          `json:"op"`
	Host string          `json:"host,omitempty"`
	Seq  uint64          `json:"seq,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
}

// HostInfo describes a volunteer's machine as it reports itself.
type HostInfo struct {
	Name        string  `json:"name"`
	OS          string  `json:"os"`
	Arch        string  `json:"arch"`
	CPUs        int     `json:"cpus"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	FLOPS       float64 `json:"flops,omitempty"` // floating-point benchmark, operations per second
	// Added with the client's host measurement.
	OSVersion      string  `json:"os_version,omitempty"`
	CPUModel       string  `json:"cpu_model,omitempty"`
	IOPS           float64 `json:"iops,omitempty"`              // integer benchmark, operations per second
	MemBytesPerSec float64 `json:"mem_bytes_per_sec,omitempty"` // memory bandwidth benchmark
	WasmOPS        float64 `json:"wasm_ops,omitempty"`          // reference module under wazero, integers sieved per second
	DiskFreeBytes  int64   `json:"disk_free_bytes,omitempty"`   // free space the client may use
	// Throttle is the share of the time the client lets tasks run (its
	// cpu_usage_limit), 0 < Throttle <= 1; 0 means 1. Tasks run that much
	// slower than the benchmarks say.
	Throttle float64 `json:"throttle,omitempty"`
	// Added with the second engine: the engine the host's tasks run on
	// ("wasmtime", "wazero"); WasmOPS was measured on it.
	Engine string `json:"engine,omitempty"`
	// Added with the statistics exports (BOINC's host.gz names them
	// p_vendor, d_total, timezone and host_cpid).
	CPUVendor      string `json:"cpu_vendor,omitempty"`
	DiskTotalBytes int64  `json:"disk_total_bytes,omitempty"` // size of the disk the data directory is on
	Timezone       int    `json:"timezone,omitempty"`         // seconds east of UTC
	// CPID is the host's cross-project id as a BOINC client reports it (32
	// hex digits); "" for a momonga client, which the project then gives
	// one derived from its id.
	CPID string `json:"cpid,omitempty"`
}

// Hello registers a host, or updates its description.
type Hello struct {
	V    int      `json:"v"`
	Host HostInfo `json:"host"`
	// Server names the NATS server the host says hello through (its
	// connection's server name, "" when it is not a ValidName): the
	// project spreads the reconnections of a server's hosts by their
	// number (ReconnectSpread), so that the hosts of a leaf node that
	// restarts are not paced as if the whole project had.
	Server string `json:"server,omitempty"`
}

// HelloReply tells a host how to behave towards this project.
type HelloReply struct {
	V            int     `json:"v"`
	Error        *Error  `json:"error,omitempty"`
	Project      string  `json:"project,omitempty"`
	NextSeq      uint64  `json:"next_seq,omitempty"`      // the first sequence number the host should use
	BeatSeconds  float64 `json:"beat_seconds,omitempty"`  // send a Beat at least this often while computing
	LeaseSeconds float64 `json:"lease_seconds,omitempty"` // a task with no beat for this long is given to another host
	SigningKey   string  `json:"signing_key,omitempty"`   // FormatPublicKey of the key the project's apps are signed with
	// ReconnectSpreadSeconds: when its connection is lost, the host spreads
	// its attempts to reconnect over this long, drawn at random, so that
	// the hosts of a restarted server come back at the rate it admits
	// them instead of all at once (0: the client's own backoff).
	ReconnectSpreadSeconds float64 `json:"reconnect_spread_seconds,omitempty"`
}

// ReconnectRate is how many hosts a second a project's server is taken to
// admit after a restart, through its auth callout: the hello reply spreads
// the reconnections of N hosts over N/ReconnectRate seconds, at most
// MaxReconnectSpread, and not at all below a second.
const (
	ReconnectRate      = 400
	MaxReconnectSpread = 2 * time.Minute
)

// ReconnectSpread is the spread the hello reply gives a project of hosts
// hosts.
func ReconnectSpread(hosts int) time.Duration {
	d := min(time.Duration(float64(hosts)/ReconnectRate*float64(time.Second)), MaxReconnectSpread)
	if d < time.Second {
		return 0
	}
	return d
}

// WorkRequest asks for up to Slots tasks.
type WorkRequest struct {
	V     int    `json:"v"`
	Seq   uint64 `json:"seq"`
	Slots int    `json:"slots"`
	// Cache lists input blobs the host holds, newest first, at most
	// MaxCacheReport: the scheduler prefers giving it work on them.
	Cache []Hash `json:"cache,omitempty"`
	// Held names the project's tasks the host holds, those finished and
	// not yet reported included, when HeldAll says the list is whole. The
	// scheduler sends again, in the reply, those it gave the host and the
	// host does not name: a reply that never came, or a state file lost,
	// costs the host no lease's wait and the project no task.
	Held    []string `json:"held,omitempty"`
	HeldAll bool     `json:"held_all,omitempty"`
}

// MaxCacheReport bounds the blobs a work request says the host holds.
const MaxCacheReport = 64

// MaxHeldReport bounds the tasks a work request names; a host that holds
// more names none.
const MaxHeldReport = 1024

// Assignment gives one task to a host.
type Assignment struct {
	Task     string    `json:"task"`
	WorkUnit string    `json:"work_unit"`
	App      string    `json:"app"`
	AppHash  Hash      `json:"app_hash"`
	AppSize  int64     `json:"app_size"`
	AppSig   string    `json:"app_sig,omitempty"` // the app's signed manifest
	Args     []string  `json:"args,omitempty"`
	Stdin    Hash      `json:"stdin,omitempty"`
	Limits   Limits    `json:"limits"`
	Deadline time.Time `json:"deadline"`
	FPOps    float64   `json:"fpops,omitempty"` // the work unit's estimate, for the host's runtime estimate
	// Checkpoint, when set, is where the task resumes: the newest checkpoint
	// the project holds for it, made on this or another host.
	Checkpoint *CheckpointRef `json:"checkpoint,omitempty"`
	// CheckpointSeconds, when set, is how often the work unit asks to be
	// checkpointed; otherwise the volunteer's preference applies.
	CheckpointSeconds float64 `json:"checkpoint_seconds,omitempty"`
}

// WorkReply carries the tasks assigned to the requesting host.
type WorkReply struct {
	V            int          `json:"v"`
	Error        *Error       `json:"error,omitempty"`
	Assignments  []Assignment `json:"assignments,omitempty"`
	RetrySeconds float64      `json:"retry_seconds,omitempty"` // when there was nothing to give
}

// TaskProgress is one running task in a Beat.
type TaskProgress struct {
	Task       string  `json:"task"`
	Fraction   float64 `json:"fraction,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// Beat tells the project that a host is still computing its tasks.
type Beat struct {
	V     int            `json:"v"`
	Seq   uint64         `json:"seq"`
	Tasks []TaskProgress `json:"tasks"`
}

// BeatReply renews the leases of the tasks in the Beat and lists the ones the
// host should stop (no longer its own, or no longer needed).
type BeatReply struct {
	V     int      `json:"v"`
	Error *Error   `json:"error,omitempty"`
	Abort []string `json:"abort,omitempty"`
}

// Report is the outcome of a task. For a success the output blob has been
// uploaded before the report is sent.
type Report struct {
	V          int     `json:"v"`
	Seq        uint64  `json:"seq"`
	Task       string  `json:"task"`
	Outcome    Outcome `json:"outcome"`
	Output     Hash    `json:"output,omitempty"`
	OutputSize int64   `json:"output_size,omitempty"`
	ExitCode   int     `json:"exit_code"`
	Reason     string  `json:"reason,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// Ack answers a request that returns nothing but success or an error.
type Ack struct {
	V     int    `json:"v"`
	Error *Error `json:"error,omitempty"`
}

// AddApp publishes an application whose module is already in the blob store.
type AddApp struct {
	V    int    `json:"v"`
	Name string `json:"name"`
	Hash Hash   `json:"hash"`
	Size int64  `json:"size"`

	Signature string `json:"signature,omitempty"` // AppSignature manifest; the gateway checks it against the project's key
	Policy    Policy `json:"policy,omitzero"`
	// CodeSigs are the BOINC code signatures of the module and the runners
	// (CodeSignature), for stock BOINC clients; none when the project's
	// code-signing key was not at hand, and in entries older than them.
	CodeSigs []CodeSignature `json:"code_sigs,omitempty"`
}

// UnitSpec is one work unit of a submission.
type UnitSpec struct {
	Name  string   `json:"name,omitempty"`
	Args  []string `json:"args,omitempty"`
	Stdin Hash     `json:"stdin,omitempty"`
	FPOps float64  `json:"fpops,omitempty"` // estimated floating-point operations
}

// Submit adds a batch of work units (or more units to an existing batch).
type Submit struct {
	V               int        `json:"v"`
	Batch           string     `json:"batch"`
	App             string     `json:"app"`
	Replication     int        `json:"replication,omitempty"`
	Quorum          int        `json:"quorum,omitempty"`
	DeadlineSeconds float64    `json:"deadline_seconds,omitempty"` // from assignment to report
	Limits          Limits     `json:"limits"`
	Units           []UnitSpec `json:"units"`
	// CheckpointSeconds asks hosts to checkpoint the tasks this often
	// (0: each volunteer's preference, 60 s by default).
	CheckpointSeconds float64 `json:"checkpoint_seconds,omitempty"`
	// NoShare computes these units even when the same computation (app,
	// args, stdin) is done or under way for another unit: by default such
	// a unit waits for that one and takes its result.
	NoShare bool `json:"no_share,omitempty"`
}

// Cancel stops work units of a batch: all of them, or the ones named.
// Unsent tasks are dropped, running ones aborted at their next heartbeat;
// units already decided stay as they are.
type Cancel struct {
	V     int      `json:"v"`
	Batch string   `json:"batch"`
	Units []string `json:"units,omitempty"` // unit names; none: the whole batch
}

// CancelReply says how many units a Cancel stopped.
type CancelReply struct {
	V         int    `json:"v"`
	Error     *Error `json:"error,omitempty"`
	Cancelled int    `json:"cancelled"`
}

// SubmitReply names the work units a Submit created.
type SubmitReply struct {
	V     int      `json:"v"`
	Error *Error   `json:"error,omitempty"`
	Batch string   `json:"batch,omitempty"`
	Units []string `json:"units,omitempty"`
}

// Submission bounds.
const (
	MaxUnitsPerSubmit = 10000
	MaxReplication    = 16
	MaxArgs           = 64
	MaxArgBytes       = 4096
	MaxNameBytes      = 128
)

// MaxAdminMessageBytes bounds a message from the project's own tools.
const MaxAdminMessageBytes = 1 << 20

// Decode reads a message of type T from b, bounded by MaxMessageBytes, and
// checks it with its Validate method.
func Decode[T any, P interface {
	*T
	Validate() error
}](b []byte) (T, error) {
	return DecodeLimit[T, P](b, MaxMessageBytes)
}

// DecodeLimit is Decode with another size bound.
func DecodeLimit[T any, P interface {
	*T
	Validate() error
}](b []byte, limit int) (T, error) {
	var v T
	if len(b) > limit {
		return v, Errorf(CodeTooLarge, "message of %d bytes is over the %d-byte limit", len(b), limit)
	}
	if ok, err := decodeFast(b, &v); ok {
		return v, err
	}
	// A value of its own, so that v need not live on the heap.
	p := new(T)
	if err := json.Unmarshal(b, p); err != nil {
		return *p, Errorf(CodeBadRequest, "malformed message: %v", err)
	}
	if err := P(p).Validate(); err != nil {
		return *p, err
	}
	return *p, nil
}

// DecodeReply decodes a reply of the project into v, a pointer to a zero
// value, as encoding/json does; a work reply, which volunteers read most
// and the largest, is read by hand when it is in the plain form momonga
// writes.
func DecodeReply(b []byte, v any) error {
	if r, ok := v.(*WorkReply); ok {
		var fast WorkReply
		if ok, _ := decodeFast(b, &fast); ok {
			*r = fast
			return nil
		}
	}
	return json.Unmarshal(b, v)
}

// Encode writes a message. Messages are plain data: encoding cannot fail.
func Encode(v any) []byte {
	if b, ok := encodeFast(v); ok {
		return b
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("workunits: encode: " + err.Error())
	}
	return b
}

// ValidName reports whether s can name an app, batch or work unit: 1 to
// MaxNameBytes of letters, digits and . _ -, not starting with a dot.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameBytes || s[0] == '.' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-", c)) {
			return false
		}
	}
	return true
}

// ValidHostID reports whether s can be a host id: it appears as a subject
// token, so it is a name without dots.
func ValidHostID(s string) bool {
	return ValidName(s) && !strings.Contains(s, ".")
}

func (m *Command) Validate() error {
	if m.Op == "" {
		return Errorf(CodeBadRequest, "command has no op")
	}
	return nil
}

func (m *Hello) Validate() error {
	h := m.Host
	if len(h.Name) > MaxNameBytes || len(h.OS) > 32 || len(h.Arch) > 32 || len(h.OSVersion) > 256 || len(h.CPUModel) > 256 || len(h.CPUVendor) > 256 || len(h.Engine) > 32 {
		return Errorf(CodeBadRequest, "host name, os, os version, cpu model, cpu vendor, arch or engine too long")
	}
	if h.CPUs < 0 || h.CPUs > 4096 || h.MemoryBytes < 0 || !(h.FLOPS >= 0 && h.FLOPS < 1e18) || h.IOPS < 0 || h.MemBytesPerSec < 0 || h.WasmOPS < 0 || h.DiskFreeBytes < 0 ||
		h.DiskTotalBytes < 0 || h.Timezone < -14*3600 || h.Timezone > 14*3600 || !(h.Throttle >= 0 && h.Throttle <= 1) {
		return Errorf(CodeBadRequest, "host description out of range")
	}
	if h.CPID != "" && !isHex(h.CPID, 64) {
		return Errorf(CodeBadRequest, "host cpid %.16q: up to 64 hex digits", h.CPID)
	}
	if m.Server != "" && !ValidName(m.Server) {
		return Errorf(CodeBadRequest, "server name %.64q: letters, digits, '.', '_' and '-'", m.Server)
	}
	return nil
}

func (m *WorkRequest) Validate() error {
	if m.Seq == 0 {
		return Errorf(CodeBadRequest, "work request without seq")
	}
	if m.Slots < 1 || m.Slots > 256 {
		return Errorf(CodeBadRequest, "slots %d outside 1..256", m.Slots)
	}
	if len(m.Cache) > MaxCacheReport {
		return Errorf(CodeBadRequest, "work request lists %d cached blobs, more than %d", len(m.Cache), MaxCacheReport)
	}
	for _, h := range m.Cache {
		if !h.Valid() {
			return Errorf(CodeBadRequest, "cached blob %q is not a sha-256", h)
		}
	}
	if len(m.Held) > MaxHeldReport {
		return Errorf(CodeBadRequest, "work request names %d held tasks, more than %d", len(m.Held), MaxHeldReport)
	}
	for _, t := range m.Held {
		if t == "" || len(t) > 2*MaxNameBytes {
			return Errorf(CodeBadRequest, "work request names a malformed held task")
		}
	}
	return nil
}

func (m *Beat) Validate() error {
	if m.Seq == 0 {
		return Errorf(CodeBadRequest, "beat without seq")
	}
	if len(m.Tasks) > 1024 {
		return Errorf(CodeBadRequest, "beat lists %d tasks, more than 1024", len(m.Tasks))
	}
	for _, t := range m.Tasks {
		if t.Task == "" || len(t.Task) > 2*MaxNameBytes {
			return Errorf(CodeBadRequest, "beat names a malformed task")
		}
	}
	return nil
}

func (m *Report) Validate() error {
	if m.Seq == 0 {
		return Errorf(CodeBadRequest, "report without seq")
	}
	if m.Task == "" || len(m.Task) > 2*MaxNameBytes {
		return Errorf(CodeBadRequest, "report names a malformed task")
	}
	switch m.Outcome {
	case OutcomeSuccess:
		if !m.Output.Valid() {
			return Errorf(CodeBadRequest, "successful report without a valid output hash")
		}
		if m.OutputSize < 0 || m.OutputSize > MaxOutputBytes {
			return Errorf(CodeBadRequest, "output size %d out of range", m.OutputSize)
		}
	case OutcomeFailure:
	default:
		return Errorf(CodeBadRequest, "unknown outcome %q", m.Outcome)
	}
	if len(m.Reason) > 4096 || m.CPUSeconds < 0 {
		return Errorf(CodeBadRequest, "report reason too long or cpu time negative")
	}
	return nil
}

func (m *AddApp) Validate() error {
	if !ValidName(m.Name) {
		return Errorf(CodeBadRequest, "app name %q: use 1-%d letters, digits, '.', '_' or '-'", m.Name, MaxNameBytes)
	}
	if !m.Hash.Valid() {
		return Errorf(CodeBadRequest, "app hash %q is not a sha-256", m.Hash)
	}
	if m.Size <= 0 {
		return Errorf(CodeBadRequest, "app size must be positive")
	}
	if len(m.Signature) > MaxSignatureBytes {
		return Errorf(CodeBadRequest, "app signature over %d bytes", MaxSignatureBytes)
	}
	if err := validateCodeSignatures(m.CodeSigs); err != nil {
		return err
	}
	return m.Policy.Validate()
}

func (m *Submit) Validate() error {
	if !ValidName(m.Batch) {
		return Errorf(CodeBadRequest, "batch name %q: use 1-%d letters, digits, '.', '_' or '-'", m.Batch, MaxNameBytes)
	}
	if !ValidName(m.App) {
		return Errorf(CodeBadRequest, "app name %q is malformed", m.App)
	}
	if m.Replication < 0 || m.Replication > MaxReplication || m.Quorum < 0 || m.Quorum > MaxReplication {
		return Errorf(CodeBadRequest, "replication and quorum must be within 1..%d", MaxReplication)
	}
	if m.Replication > 0 && m.Quorum > m.Replication {
		return Errorf(CodeBadRequest, "quorum %d is larger than replication %d", m.Quorum, m.Replication)
	}
	if m.DeadlineSeconds < 0 || m.DeadlineSeconds > 365*24*3600 {
		return Errorf(CodeBadRequest, "deadline out of range")
	}
	if m.CheckpointSeconds < 0 || m.CheckpointSeconds > 24*3600 {
		return Errorf(CodeBadRequest, "checkpoint interval out of range 0..1 day")
	}
	if err := m.Limits.Validate(); err != nil {
		return err
	}
	if len(m.Units) == 0 || len(m.Units) > MaxUnitsPerSubmit {
		return Errorf(CodeBadRequest, "a submission holds 1..%d work units, not %d", MaxUnitsPerSubmit, len(m.Units))
	}
	for i, u := range m.Units {
		if u.Name != "" && !ValidName(u.Name) {
			return Errorf(CodeBadRequest, "unit %d: name %q is malformed", i, u.Name)
		}
		if len(u.Args) > MaxArgs {
			return Errorf(CodeBadRequest, "unit %d: more than %d args", i, MaxArgs)
		}
		for _, a := range u.Args {
			if len(a) > MaxArgBytes {
				return Errorf(CodeBadRequest, "unit %d: an arg is over %d bytes", i, MaxArgBytes)
			}
		}
		if u.Stdin != "" && !u.Stdin.Valid() {
			return Errorf(CodeBadRequest, "unit %d: stdin %q is not a sha-256", i, u.Stdin)
		}
		if u.FPOps < 0 {
			return Errorf(CodeBadRequest, "unit %d: negative fpops", i)
		}
	}
	return nil
}

func (m *Cancel) Validate() error {
	if !ValidName(m.Batch) {
		return Errorf(CodeBadRequest, "batch name %q is malformed", m.Batch)
	}
	if len(m.Units) > MaxUnitsPerSubmit {
		return Errorf(CodeBadRequest, "a cancel names at most %d units, not %d", MaxUnitsPerSubmit, len(m.Units))
	}
	for _, n := range m.Units {
		if !ValidName(n) {
			return Errorf(CodeBadRequest, "unit name %q is malformed", n)
		}
	}
	return nil
}

// Headers of blob transfers (vol.H.blob.get, vol.H.blob.put). A chunk
// travels as the raw message body; these say what it is.
const (
	HeaderHash   = "Momonga-Hash"   // the blob's sha-256
	HeaderOffset = "Momonga-Offset" // where the chunk starts
	HeaderSize   = "Momonga-Size"   // the whole blob's size
	HeaderDone   = "Momonga-Done"   // put reply: bytes of the blob the project holds
	HeaderError  = "Momonga-Error"  // reply: "code: message"
)

// Blob transfer subjects, after vol.H.
const (
	OpBlobGet = "blob.get"
	OpBlobPut = "blob.put"
)

// Subjects of the project's own tools. They are never open to volunteers.
const (
	SubjectAdminCommand = "adm.cmd"     // a Command that changes state (app.add, submit)
	SubjectAdminStatus  = "adm.status"  // → StatusReply
	SubjectAdminResults = "adm.results" // ResultsQuery → ResultsReply
)

// VolunteerSubject is the subject a host uses for op.
func VolunteerSubject(host, op string) string { return "vol." + host + "." + op }

// ParseVolunteerSubject splits vol.H.op into host and op.
func ParseVolunteerSubject(s string) (host, op string, ok bool) {
	rest, found := strings.CutPrefix(s, "vol.")
	if !found {
		return "", "", false
	}
	host, op, found = strings.Cut(rest, ".")
	if !found || !ValidHostID(host) || op == "" {
		return "", "", false
	}
	return host, op, true
}

// ParseHeaderError reads a HeaderError value back into an *Error.
func ParseHeaderError(v string) *Error {
	if v == "" {
		return nil
	}
	code, msg, ok := strings.Cut(v, ": ")
	if !ok {
		return &Error{Code: CodeInternal, Message: v}
	}
	return &Error{Code: code, Message: msg}
}

// HeaderErrorValue writes e as a HeaderError value.
func HeaderErrorValue(e *Error) string {
	return e.Code + ": " + strings.ReplaceAll(e.Message, "\n", " ")
}
