package stats

import (
	"context"
	"errors"
	"time"
)

// What the site shows, page by page. The HTML pages and /api/v1 render the
// same values (a page is its API document through a template), so the two
// never disagree. A Source composes them from the project's state
// (project/reads): each is a lookup in the scheduler's and the accounting
// peer's indexes, never a walk over every host or user.

// Source answers the site's questions. Errors other than ErrNotFound are
// the project's (not ready, say): the site answers them with 503.
type Source interface {
	Overview(ctx context.Context) (Overview, error)
	Board(ctx context.Context, kind Kind, by Order, offset, limit int) (Board, error)
	User(ctx context.Context, id uint64) (UserPage, error)
	Team(ctx context.Context, id uint64) (TeamPage, error)
	Host(ctx context.Context, id uint64) (HostPage, error)
	Apps(ctx context.Context) (AppsPage, error)
	Batch(ctx context.Context, name string) (BatchPage, error)
	Search(ctx context.Context, query string, limit int) (SearchPage, error)
}

// ErrNotFound is a Source's answer for a user, team, host or batch it
// does not know.
var ErrNotFound = errors.New("not found")

// Kind is a leaderboard's table.
type Kind string

const (
	Users Kind = "users"
	Teams Kind = "teams"
	Hosts Kind = "hosts"
)

// Order is what a leaderboard is sorted by.
type Order string

const (
	ByCredit Order = "credit" // total credit
	ByRAC    Order = "rac"    // recent average credit
)

// ActiveDays is how recent a host's or user's credit must be for it to
// count as active.
const ActiveDays = 7

// Ref names a user, team or host and links to it.
type Ref struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

// Point is one day's or month's credit in a history.
type Point struct {
	Date   string  `json:"date"` // 2006-01-02 for a day, 2006-01 for a month
	Credit float64 `json:"credit"`
}

// History is an account's credit over time: the last 90 days, zeros
// included, and every month kept.
type History struct {
	Days   []Point `json:"days"`
	Months []Point `json:"months"`
}

// Credit is what an account has been granted and where it stands.
type Credit struct {
	Total      float64 `json:"total_credit"`
	RAC        float64 `json:"rac"` // recent average credit, decayed to the page's time
	Results    int     `json:"results"`
	CreditRank int     `json:"credit_rank,omitempty"` // 0: never credited
	RACRank    int     `json:"rac_rank,omitempty"`
}

// Overview is the front page.
type Overview struct {
	Project string    `json:"project"`
	Now     time.Time `json:"now"`
	// FLOPS is the computing power of the last day: the credit granted in
	// the last 24 hours as floating-point operations per second (a
	// Cobblestone is 1/200 of a day of 1 GFLOPS).
	FLOPS       float64        `json:"flops"`
	ActiveHosts int            `json:"active_hosts"` // credited in the last ActiveDays days
	ActiveUsers int            `json:"active_users"`
	Hosts       int            `json:"hosts"` // ever credited
	Users       int            `json:"users"`
	Teams       int            `json:"teams"`
	TotalCredit float64        `json:"total_credit"`
	Daily       []Point        `json:"daily"` // the last 30 days
	Batches     []BatchSummary `json:"batches"`
}

// BatchSummary is a batch on the front page.
type BatchSummary struct {
	Name    string `json:"name"`
	App     string `json:"app"`
	Units   int    `json:"units"`
	Valid   int    `json:"valid"`
	Errored int    `json:"errored"`
	// Cancelled units were stopped by the project (momonga-project cancel).
	Cancelled int `json:"cancelled"`
	Pending   int `json:"pending"`
}

// Entry is one line of a leaderboard or of a list of accounts.
type Entry struct {
	Rank int `json:"rank,omitempty"`
	Ref
	Of     *Ref    `json:"of,omitempty"` // a host's user, a user's team
	Credit float64 `json:"total_credit"`
	RAC    float64 `json:"rac"`
}

// Board is a page of a leaderboard.
type Board struct {
	Kind    Kind      `json:"kind"`
	By      Order     `json:"by"`
	Now     time.Time `json:"now"`
	Offset  int       `json:"offset"`
	Limit   int       `json:"limit"`
	Total   int       `json:"total"`
	Entries []Entry   `json:"entries"`
}

// UserPage is a user's page: never the e-mail address.
type UserPage struct {
	Ref
	Now     time.Time `json:"now"`
	Country string    `json:"country,omitempty"`
	Created time.Time `json:"created"`
	Team    *Ref      `json:"team,omitempty"`
	Credit
	History History `json:"history"`
	// Hosts lists its hosts by total credit, the first MaxHosts of them.
	Hosts      []Entry `json:"hosts"`
	HostsTotal int     `json:"hosts_total"`
}

// TeamPage is a team's page.
type TeamPage struct {
	Ref
	Now         time.Time `json:"now"`
	Type        int       `json:"type"`
	Country     string    `json:"country,omitempty"`
	URL         string    `json:"url,omitempty"`
	Description string    `json:"description,omitempty"`
	Founder     *Ref      `json:"founder,omitempty"`
	Created     time.Time `json:"created"`
	Credit
	History History `json:"history"`
	// Members lists the team's users by total credit, the first
	// MaxMembers of them.
	Members      []Entry `json:"members"`
	MembersTotal int     `json:"members_total"`
}

// MaxMembers bounds the members a team's page lists, MaxHosts the hosts a
// user's page lists.
const (
	MaxMembers = 200
	MaxHosts   = 200
)

// HostPage is a host's page.
type HostPage struct {
	Ref
	Now        time.Time `json:"now"`
	User       *Ref      `json:"user,omitempty"`
	OS         string    `json:"os"`
	OSVersion  string    `json:"os_version,omitempty"`
	Arch       string    `json:"arch"`
	CPUVendor  string    `json:"cpu_vendor,omitempty"`
	CPUModel   string    `json:"cpu_model,omitempty"`
	CPUs       int       `json:"cpus"`
	Memory     int64     `json:"memory_bytes,omitempty"`
	DiskFree   int64     `json:"disk_free_bytes,omitempty"`
	DiskTotal  int64     `json:"disk_total_bytes,omitempty"`
	FLOPS      float64   `json:"flops,omitempty"` // floating-point benchmark
	IOPS       float64   `json:"iops,omitempty"`  // integer benchmark
	MemBW      float64   `json:"mem_bytes_per_sec,omitempty"`
	WasmOPS    float64   `json:"wasm_ops,omitempty"`
	Created    time.Time `json:"created"`
	LastSeen   time.Time `json:"last_seen"`
	Valid      int       `json:"valid"`
	Invalid    int       `json:"invalid"`
	Lost       int       `json:"lost"`
	Turnaround float64   `json:"turnaround_seconds,omitempty"`
	Revoked    bool      `json:"revoked,omitempty"`
	Credit
	History History `json:"history"`
	Running []Task  `json:"running"`
	Recent  []Task  `json:"recent"`
}

// Task is a task on a host's page.
type Task struct {
	ID         string    `json:"id"`
	Batch      string    `json:"batch"`
	Unit       string    `json:"unit"`
	App        string    `json:"app"`
	State      string    `json:"state"`
	Outcome    string    `json:"outcome,omitempty"`
	Validity   string    `json:"validity,omitempty"`
	Fraction   float64   `json:"fraction"`
	CPUSeconds float64   `json:"cpu_seconds,omitempty"`
	Credit     float64   `json:"credit,omitempty"`
	Sent       time.Time `json:"sent"`
}

// AppsPage lists the apps.
type AppsPage struct {
	Now  time.Time `json:"now"`
	Apps []App     `json:"apps"`
}

// App is one app and its batches.
type App struct {
	Name        string         `json:"name"`
	Hash        string         `json:"sha256"`
	Size        int64          `json:"size"`
	Added       time.Time      `json:"added"`
	Replication int            `json:"replication"`
	Quorum      int            `json:"quorum"`
	Adaptive    bool           `json:"adaptive,omitempty"`
	Batches     []BatchSummary `json:"batches"`
}

// BatchPage is a batch's progress.
type BatchPage struct {
	BatchSummary
	Now     time.Time `json:"now"`
	Created time.Time `json:"created"`
	// Hourly counts the units decided in each of the last 48 hours,
	// oldest first.
	Hourly []int `json:"hourly"`
	// PerHour is the rate of the last 24 hours (or since the batch began),
	// and ETA the time to finish the pending units at that rate (0:
	// unknown or done).
	PerHour    float64 `json:"units_per_hour"`
	ETASeconds float64 `json:"eta_seconds,omitempty"`
	// Pictures are valid units whose canonical output is an image (PGM),
	// served as PNG at /batches/NAME/pictures/I.png.
	Pictures []Picture `json:"pictures,omitempty"`
}

// Picture is one unit's output shown as an image.
type Picture struct {
	Unit   string `json:"unit"`
	Output string `json:"output"` // sha-256 of the canonical output
}

// SearchPage is what a search found.
type SearchPage struct {
	Query string `json:"query"`
	Users []Ref  `json:"users"`
	Teams []Ref  `json:"teams"`
}
