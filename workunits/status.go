package workunits

import (
	"slices"
	"time"
)

// Query subjects answered by a scheduler member from its state, outside the
// log: they change nothing.
const (
	QueryStatus  = "status"
	QueryResults = "results"
)

// StatusReply is the project's state in brief.
type StatusReply struct {
	V       int           `json:"v"`
	Error   *Error        `json:"error,omitempty"`
	Project string        `json:"project"`
	Now     time.Time     `json:"now"`     // time of the newest tick the scheduler applied
	Applied uint64        `json:"applied"` // log sequence the state reflects
	Apps    []App         `json:"apps"`
	Batches []BatchStatus `json:"batches"`
	Hosts   []HostStatus  `json:"hosts"`
	Users   []UserStatus  `json:"users,omitempty"`
	Teams   []TeamStatus  `json:"teams,omitempty"`
	// HostsTotal, UsersTotal and TeamsTotal are set in a reply cut to fit
	// one message (EncodeStatus): they count every host, user and team,
	// where the lists hold only the hosts seen most recently and the first
	// users and teams.
	HostsTotal int `json:"hosts_total,omitempty"`
	UsersTotal int `json:"users_total,omitempty"`
	TeamsTotal int `json:"teams_total,omitempty"`
}

// MaxStatusBytes bounds a status reply sent over NATS, under the 1 MB a
// NATS message may carry by default.
const MaxStatusBytes = 960 << 10

// EncodeStatus writes st in at most limit bytes: a project of some
// thousands of hosts has a status larger than a NATS message may be, so
// its lists are cut, by half at a time, keeping the hosts seen most
// recently (in the order of st) and the first users and teams, and the
// totals say how many there are.
func EncodeStatus(st StatusReply, limit int) []byte {
	b := Encode(st)
	if len(b) <= limit {
		return b
	}
	hosts, users, teams := st.Hosts, st.Users, st.Teams
	st.HostsTotal, st.UsersTotal, st.TeamsTotal = len(hosts), len(users), len(teams)
	// The hosts by last seen, newest first: index into hosts.
	recent := make([]int, len(hosts))
	for i := range recent {
		recent[i] = i
	}
	slices.SortStableFunc(recent, func(a, b int) int { return hosts[b].LastSeen.Compare(hosts[a].LastSeen) })
	for div := 2; ; div *= 2 {
		keep := slices.Clone(recent[:len(recent)/div])
		slices.Sort(keep)
		st.Hosts = make([]HostStatus, len(keep))
		for i, j := range keep {
			st.Hosts[i] = hosts[j]
		}
		st.Users, st.Teams = users[:len(users)/div], teams[:len(teams)/div]
		if b = Encode(st); len(b) <= limit || len(keep)+len(st.Users)+len(st.Teams) == 0 {
			return b
		}
	}
}

// BatchStatus counts a batch's work units and tasks by state.
type BatchStatus struct {
	Name    string `json:"name"`
	App     string `json:"app"`
	Units   int    `json:"units"`
	Pending int    `json:"pending"`
	Valid   int    `json:"valid"`
	Errored int    `json:"error"`
	// Cancelled units were stopped by the project before being decided.
	Cancelled int               `json:"cancelled,omitempty"`
	Tasks     map[TaskState]int `json:"tasks"`
}

// Done reports whether every work unit of the batch is valid, in error or
// cancelled.
func (b BatchStatus) Done() bool { return b.Units > 0 && b.Pending == 0 }

// HostStatus is what the project knows of one volunteer host.
type HostStatus struct {
	ID       string    `json:"id"`
	Info     HostInfo  `json:"info"`
	LastSeen time.Time `json:"last_seen"`
	Running  int       `json:"running"` // tasks assigned now
	Valid    int       `json:"valid"`   // results that were validated
	Invalid  int       `json:"invalid"` // results that failed or disagreed
	Lost     int       `json:"lost"`    // tasks whose lease ran out
	Credit   float64   `json:"credit"`  // granted, in Cobblestones

	RAC     float64 `json:"rac"`               // recent average credit, Cobblestones per day
	User    string  `json:"user,omitempty"`    // owner's name, for attached hosts
	Streak  int     `json:"streak,omitempty"`  // consecutive results validated against other hosts'
	Revoked bool    `json:"revoked,omitempty"` // credentials withdrawn
	// Speed is the host's speed as the scheduler judges it, in FLOPS: its
	// benchmark, throttle and measured run times (DCF, the ratio of its
	// run times to their estimates) and its record of lost and invalid
	// results; Class is where that speed ranks among the hosts' (0, the
	// slowest, to SizeClasses-1).
	Speed float64 `json:"speed,omitempty"`
	DCF   float64 `json:"dcf,omitempty"`
	Class int     `json:"class,omitempty"`
	// Turnaround is the host's mean time from receiving a task to
	// reporting it, in seconds.
	Turnaround float64 `json:"turnaround,omitempty"`
	// Server is the NATS server the host last said hello through (Hello.Server):
	// a core server or a leaf node; "" when it named none.
	Server string `json:"server,omitempty"`
}

// SizeClasses is how many classes of host speed and work-unit size the
// scheduler matches (DESIGN §8).
const SizeClasses = 4

// ResultsQuery asks for the outcome of one batch.
type ResultsQuery struct {
	V      int    `json:"v"`
	Batch  string `json:"batch"`
	Offset int    `json:"offset,omitempty"` // first unit to list
}

// ResultsPage is how many units one ResultsReply lists at most.
const ResultsPage = 2000

func (m *ResultsQuery) Validate() error {
	if !ValidName(m.Batch) {
		return Errorf(CodeBadRequest, "batch name %q is malformed", m.Batch)
	}
	if m.Offset < 0 {
		return Errorf(CodeBadRequest, "negative offset")
	}
	return nil
}

// ResultsReply lists the work units of a batch with their canonical results.
type ResultsReply struct {
	V     int          `json:"v"`
	Error *Error       `json:"error,omitempty"`
	Batch string       `json:"batch"`
	App   string       `json:"app"`
	Units []UnitResult `json:"units"`
	Total int          `json:"total"`          // units in the batch
	Next  int          `json:"next,omitempty"` // offset of the next page, 0 when this is the last
}

// UnitResult is one work unit's outcome.
type UnitResult struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	State      WorkUnitState `json:"state"`
	Output     Hash          `json:"output,omitempty"` // the canonical result, when valid
	OutputSize int64         `json:"output_size,omitempty"`
	Tasks      int           `json:"tasks"` // replicas issued
	Reason     string        `json:"reason,omitempty"`
	// SharedWith is the unit whose computation this one took its result
	// from (the same app, args and stdin): it was not computed again.
	SharedWith string `json:"shared_with,omitempty"`
}
