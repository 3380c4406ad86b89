package sched

import (
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	wu "github.com/momonga-project/momonga/workunits"
)

// state is everything the scheduler knows. It is encoded whole in snapshots
// (snapshot.go): a field added here must be added there, and
// TestSnapshotCoversEveryField fails until it is.
type state struct {
	Now      time.Time           `json:"now"`
	NextUnit uint64              `json:"next_unit"`
	Apps     map[string]wu.App   `json:"apps"`
	Batches  map[string]*batch   `json:"batches"`
	Units    map[string]*unit    `json:"units"`
	Tasks    map[string]*task    `json:"tasks"`
	Hosts    map[string]*host    `json:"hosts"`
	Sessions map[string]*session `json:"sessions"`
	// Unsent holds task ids waiting for a host, oldest first; Retry holds
	// tasks whose host was lost, served before Unsent. Entries whose task is
	// no longer unsent are dropped when they reach the front.
	Unsent []string `json:"unsent"`
	Retry  []string `json:"retry"`
	// Assigned is the set of tasks out on hosts, scanned on every tick.
	Assigned map[string]bool `json:"assigned"`

	// Accounts (accounts.go). Tables added after the first release may be
	// missing from older snapshots; Restore creates them.
	Users    map[string]*user `json:"users"`
	Teams    map[string]*team `json:"teams"`
	NextUser uint64           `json:"next_user,omitempty"`
	NextTeam uint64           `json:"next_team,omitempty"`
	NextHost uint64           `json:"next_host,omitempty"`
	// AppSigs holds the signed manifest of every module an app has
	// published, by hash: units keep running the module they were
	// submitted with after the app is published again.
	AppSigs map[wu.Hash]string `json:"app_sigs"`
	// CodeSigs holds the BOINC code signature of every file an app was
	// added with (its module, the runners), by the file's md5, which is
	// what BOINC signs: the BOINC side sends them and signs nothing itself,
	// so the key that makes them may be kept offline.
	CodeSigs map[string]string `json:"code_sigs,omitempty"`
	// Compare is the set of work units waiting for the validator to say
	// whether two of their outputs agree (validate.go).
	Compare map[string]bool `json:"compare"`
	// Garbage lists checkpoint blobs no task needs any more, for the
	// project to delete (OpCkptDropped then removes them from here).
	Garbage []wu.Hash `json:"garbage,omitempty"`
	// Outbox holds the credit granted (outputs for the accounting virtual
	// peer, outputs.go) that the accounting peer has not acknowledged yet,
	// oldest first; NextOutput is the id of the last output made.
	Outbox     []accounting.Grant `json:"outbox,omitempty"`
	NextOutput uint64             `json:"next_output,omitempty"`
	// AppFPOps is what a unit of each app was measured to need, in
	// floating-point operations, for the units submitted without an
	// estimate (capability.go).
	AppFPOps map[string]float64 `json:"app_fpops,omitempty"`
	// Shares finds, by the key of a computation (share.go), the unit that
	// computes it or computed it valid.
	Shares map[wu.Hash]string `json:"shares,omitempty"`

	// Servers names the NATS servers the hosts said hello through
	// (servers.go), each in one place; a place no host names any more is
	// "" until a new server takes it.
	Servers []string `json:"servers,omitempty"`

	// For the stats site (stats.go): the last host number given, each
	// batch's progress by name, and counts since the start.
	HostNums uint64               `json:"host_nums,omitempty"`
	Progress map[string]*progress `json:"progress,omitempty"`
	Counters counters             `json:"counters,omitzero"`
}

func newState() *state {
	return &state{
		Apps:     map[string]wu.App{},
		Batches:  map[string]*batch{},
		Units:    map[string]*unit{},
		Tasks:    map[string]*task{},
		Hosts:    map[string]*host{},
		Sessions: map[string]*session{},
		Assigned: map[string]bool{},
		Users:    map[string]*user{},
		Teams:    map[string]*team{},
		AppSigs:  map[wu.Hash]string{},
		CodeSigs: map[string]string{},
		Compare:  map[string]bool{},
		AppFPOps: map[string]float64{},
		Shares:   map[wu.Hash]string{},
		Progress: map[string]*progress{},
	}
}

type batch struct {
	Name      string   `json:"name"`
	App       string   `json:"app"`
	Units     []string `json:"units"`
	Names     []string `json:"names"` // unit names, parallel to Units
	Pending   int      `json:"pending"`
	Valid     int      `json:"valid"`
	Errored   int      `json:"errored"`
	Cancelled int      `json:"cancelled,omitempty"`
}

type unit struct {
	ID          string           `json:"id"`
	Name        string           `json:"name"`
	Batch       string           `json:"batch"`
	App         string           `json:"app"`
	AppHash     wu.Hash          `json:"app_hash"`
	AppSize     int64            `json:"app_size"`
	Args        []string         `json:"args,omitempty"`
	Stdin       wu.Hash          `json:"stdin,omitempty"`
	FPOps       float64          `json:"fpops,omitempty"`
	Limits      wu.Limits        `json:"limits"`
	Deadline    float64          `json:"deadline"` // seconds from assignment to report
	Replication int              `json:"replication"`
	Quorum      int              `json:"quorum"`
	MaxTasks    int              `json:"max_tasks"`
	State       wu.WorkUnitState `json:"state"`
	Tasks       []string         `json:"tasks"`
	Canonical   wu.Hash          `json:"canonical,omitempty"`
	OutputSize  int64            `json:"output_size,omitempty"`
	Reason      string           `json:"reason,omitempty"`

	// Adaptive replication: while Adaptive, the unit has one replica out
	// and the host it goes to decides whether it stays single (Quorum 1) or
	// gets FullQuorum and the other replicas.
	Adaptive   bool `json:"adaptive,omitempty"`
	FullQuorum int  `json:"full_quorum,omitempty"`
	// Tolerance is the app's fuzzy comparator; Agree holds the validator's
	// verdicts on pairs of distinct outputs ("a|b", a < b).
	Tolerance         wu.Tolerance    `json:"tolerance,omitzero"`
	Agree             map[string]bool `json:"agree,omitempty"`
	CheckpointSeconds float64         `json:"checkpoint_seconds,omitempty"`
	// Shared results (share.go): NoShare units are computed whatever
	// else computes the same; SharedWith is the unit whose result this one
	// waits for or took; Followers are the units waiting for this one's.
	NoShare    bool     `json:"no_share,omitempty"`
	SharedWith string   `json:"shared_with,omitempty"`
	Followers  []string `json:"followers,omitempty"`
}

type task struct {
	ID         string       `json:"id"`
	Unit       string       `json:"unit"`
	State      wu.TaskState `json:"state"`
	Host       string       `json:"host,omitempty"` // holder, or last holder
	Sent       time.Time    `json:"sent,omitzero"`
	LeaseUntil time.Time    `json:"lease_until,omitzero"`
	Deadline   time.Time    `json:"deadline,omitzero"`
	Fraction   float64      `json:"fraction,omitempty"`
	Outcome    wu.Outcome   `json:"outcome,omitempty"`
	Output     wu.Hash      `json:"output,omitempty"`
	OutputSize int64        `json:"output_size,omitempty"`
	CPUSeconds float64      `json:"cpu_seconds,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	Validity   wu.Validity  `json:"validity,omitempty"`
	Lost       int          `json:"lost,omitempty"`

	Claim  float64 `json:"claim,omitempty"`  // credit claimed: CPU time at the host's benchmark
	Credit float64 `json:"credit,omitempty"` // credit granted
	// Checkpoint is the newest valid checkpoint of the task, from which it
	// resumes when it goes to another host.
	Checkpoint *wu.CheckpointRef `json:"checkpoint,omitempty"`
	// Est is how long the task was estimated to run on its host, and
	// Expect how long after it was sent it was expected back (its host's
	// queue included), in milliseconds, at its benchmark speed
	// (capability.go); 0 for a unit of unknown size.
	Est    int64 `json:"est,omitempty"`
	Expect int64 `json:"expect,omitempty"`
}

type host struct {
	ID       string    `json:"id"`
	Info     hostInfo  `json:"info"`
	LastSeen time.Time `json:"last_seen"`
	// A host's counts of results fit in 32 bits (68 years at one a
	// second); with them, bucket in the room they leave and the 32-bit
	// numbers of hostInfo, a host takes 320 bytes rather than 352: 32 MB
	// of a million hosts.
	Valid   int32 `json:"valid"`
	Invalid int32 `json:"invalid"`
	Lost    int32 `json:"lost"`
	// bucket is one more than the bucket of the host histogram the host is
	// counted in (capability.go), 0 when it is not counted: derived, not
	// part of the state, and here rather than in a map by id for its size.
	bucket int32
	// free is when the host is expected to be free, in unix milliseconds
	// (finish.go): derived too.
	free int64

	User    string    `json:"user,omitempty"` // owner's id; "" for a host of an open project
	NKey    string    `json:"nkey,omitempty"` // public key it authenticates with
	Created time.Time `json:"created,omitzero"`
	Revoked bool      `json:"revoked,omitempty"`
	// Server is one more than the index in state.Servers of the NATS
	// server the host last said hello through, 0 for none named
	// (servers.go); 16 bits, in the room Revoked leaves.
	Server uint16 `json:"server,omitempty"`
	// Streak counts the host's consecutive results that agreed with another
	// host's; one invalid result resets it (adaptive replication).
	Streak int32 `json:"streak,omitempty"`

	// What the host was measured to do (capability.go): DCF, BOINC's
	// duration correction factor, is the ratio of its turnaround to the
	// estimate from its benchmark (0 for none measured yet, taken as 1);
	// Measured how many successful results it comes from.
	DCF      float64 `json:"dcf,omitempty"`
	Measured int     `json:"measured,omitempty"`
	// Given lists the input blobs of the tasks the host was given lately,
	// newest first: the only blobs whose holding it is believed when it
	// reports its cache.
	Given []wu.Hash `json:"given,omitempty"`
	// Idle: the host's last work request got fewer tasks than it asked
	// for; it is told when work comes (WorkWaiting).
	Idle bool `json:"idle,omitempty"`

	// For the stats site (stats.go) and the scheduler: the host's number,
	// its average time from being sent a task to reporting it (seconds),
	// and its last results, oldest first.
	Num        uint64   `json:"num,omitempty"`
	Turnaround float64  `json:"turnaround,omitempty"`
	Recent     []string `json:"recent,omitempty"`
}

type user struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Email   string    `json:"email,omitempty"`
	KeyHash wu.Hash   `json:"key_hash"`
	Team    string    `json:"team,omitempty"` // team id
	Created time.Time `json:"created"`

	// For the stats site and its exports (stats.go).
	Num      uint64 `json:"num,omitempty"`
	XProject string `json:"cross_project_id,omitempty"` // random, 32 hex digits
	Country  string `json:"country,omitempty"`
	NoExport bool   `json:"no_export,omitempty"` // left out of the statistics exports
}

type team struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Founder string    `json:"founder,omitempty"` // user id
	Created time.Time `json:"created"`

	// For the stats site and its exports (stats.go).
	Num         uint64 `json:"num,omitempty"`
	Type        int    `json:"type,omitempty"`
	Country     string `json:"country,omitempty"`
	URL         string `json:"url,omitempty"`
	Description string `json:"description,omitempty"`
}

// session is the de-duplication record of one requester (a host, or one run
// of an admin tool): the replies to its newest requests, by sequence number.
type session struct {
	Last     uint64            `json:"last"`
	Replies  map[uint64][]byte `json:"replies"`
	LastUsed time.Time         `json:"last_used"`
}
