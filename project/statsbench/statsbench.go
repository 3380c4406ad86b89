// Package statsbench measures the stats site at a large project's size
// (`momonga-project bench stats`, DESIGN §9): it builds a synthetic
// population of hosts, users and teams through the real scheduler and
// accounting state machines (their Apply, from encoded log records), serves
// it from vpeer members as a project server does, and times pages over
// loopback HTTP, a full BOINC export and the memory the state takes.
package statsbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/bench"
	"github.com/momonga-project/momonga/project/reads"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config sizes the population and the measurement.
type Config struct {
	Hosts, Users, Teams int
	// Grants is how many validated results are credited, over Days days
	// up to the scheduler's time: every host gets one, the rest go mostly
	// to a few busy hosts, and mostly lately.
	Grants   int
	Days     int
	Requests int // per page
	Seed     uint64
	Progress func(string)
	Logger   *slog.Logger
}

// Page is one page's latencies.
type Page struct {
	Name, Path    string
	Requests      int
	P50, P99, Max time.Duration
	// CPU is the process's CPU time per request, the client's part
	// included: on a machine shared with other work, latencies measure the
	// neighbours too, this does not.
	CPU   time.Duration
	Bytes int
}

// Report is what a run measured.
type Report struct {
	Config                Config
	SchedBuild, AcctBuild time.Duration
	Pages                 []Page
	Export, ExportCPU     time.Duration
	ExportFiles           map[string]int64
	Exported              stats.ExportSummary
	LargestTeam           int
	MostHosts             int // of one user
	// Live heap after building: the scheduler's part (hosts, users, teams
	// and their indexes), the accounting peer's (credit, history,
	// leaderboards); RSS of the process then, and its peak.
	HeapSched, HeapAcct uint64
	RSS, PeakRSS        uint64
	// The accounting peer's snapshot (history included): its size, and
	// how long writing and restoring it took.
	AcctSnapshot                int
	SnapshotWrite, SnapshotRead time.Duration
}

// T0 is the scheduler's time when the pages are asked for.
var T0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// Run builds the population, serves it and measures.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Days <= 0 {
		cfg.Days = 30
	}
	if cfg.Grants < cfg.Hosts {
		cfg.Grants = 3 * cfg.Hosts
	}
	if cfg.Requests <= 0 {
		cfg.Requests = 1000
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Hosts < 1 || cfg.Users < 1 || cfg.Teams < 1 {
		return Report{}, fmt.Errorf("a population needs at least one host, user and team")
	}
	rep := Report{Config: cfg}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5747))
	heap0 := liveHeap()

	start := time.Now()
	s, owners, teams, err := buildScheduler(cfg, r)
	if err != nil {
		return rep, err
	}
	rep.SchedBuild = time.Since(start)
	heap1 := liveHeap()
	rep.HeapSched = heap1 - min(heap0, heap1)
	for _, n := range teams {
		rep.LargestTeam = max(rep.LargestTeam, n)
	}
	// The user with the most hosts: the first, as zipf draws it most.
	hostsOf := make([]int, cfg.Users+1)
	for _, o := range owners {
		hostsOf[o[0]]++
	}
	busiest := 1
	for u, n := range hostsOf {
		if n > rep.MostHosts {
			busiest, rep.MostHosts = u, n
		}
	}
	cfg.Progress(fmt.Sprintf("scheduler: %d hosts, %d users, %d teams in %.1f s", cfg.Hosts, cfg.Users, cfg.Teams, rep.SchedBuild.Seconds()))

	start = time.Now()
	a, err := buildAccounting(cfg, r, owners)
	if err != nil {
		return rep, err
	}
	rep.AcctBuild = time.Since(start)
	rep.HeapAcct = liveHeap() - min(heap1, liveHeap())
	cfg.Progress(fmt.Sprintf("accounting: %d grants in %.1f s", cfg.Grants, rep.AcctBuild.Seconds()))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sp, err := serve(ctx, s)
	if err != nil {
		return rep, err
	}
	ap, err := serve(ctx, a)
	if err != nil {
		return rep, err
	}
	src := reads.Stats{Sched: sp, Acct: ap, Project: "bench"}
	srv, err := stats.Listen("127.0.0.1:0", stats.Handler(stats.Config{Source: src, Logger: cfg.Logger}), cfg.Logger)
	if err != nil {
		return rep, err
	}
	defer srv.Close()
	rep.RSS = rss()

	largest := 1
	for t, n := range teams {
		if n == rep.LargestTeam {
			largest = t + 1
		}
	}
	lastPage := (cfg.Hosts + stats.BoardPage - 1) / stats.BoardPage
	pr := rand.New(rand.NewPCG(cfg.Seed, 7))
	pages := []struct {
		name string
		path func() string
	}{
		// A page that reads no state: the floor the machine sets for the
		// others (its load shows here as well as there).
		{"404 page (no state)", func() string { return "/nowhere" }},
		{"overview", func() string { return "/" }},
		{"top hosts, first page", func() string { return "/hosts" }},
		{"top hosts, deep page", func() string { return "/hosts?page=" + strconv.Itoa(max(1, lastPage-10)) }},
		{"hosts by RAC, deep page", func() string { return "/hosts?by=rac&page=" + strconv.Itoa(max(1, lastPage/2)) }},
		{"host page (random)", func() string { return "/hosts/" + strconv.Itoa(1+pr.IntN(cfg.Hosts)) }},
		{"user page (random)", func() string { return "/users/" + strconv.Itoa(1+pr.IntN(cfg.Users)) }},
		{"user page (most hosts)", func() string { return "/users/" + strconv.Itoa(busiest) }},
		{"team page (largest)", func() string { return "/teams/" + strconv.Itoa(largest) }},
		{"host API (random)", func() string { return "/api/v1/hosts/" + strconv.Itoa(1+pr.IntN(cfg.Hosts)) }},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	base := strings.TrimSuffix(srv.URL(), "/")
	for _, p := range pages {
		page, err := measure(ctx, client, base, p.name, p.path, cfg.Requests)
		if err != nil {
			return rep, err
		}
		rep.Pages = append(rep.Pages, page)
		cfg.Progress(fmt.Sprintf("%s: p50 %v, p99 %v", p.name, page.P50, page.P99))
	}

	dir, err := os.MkdirTemp("", "momonga-bench-stats-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)
	start = time.Now()
	cpu0, _ := bench.ProcessCPU()
	if rep.Exported, err = stats.ExportDir(ctx, src, dir); err != nil {
		return rep, err
	}
	rep.Export = time.Since(start)
	if cpu1, ok := bench.ProcessCPU(); ok {
		rep.ExportCPU = cpu1 - cpu0
	}
	rep.ExportFiles = map[string]int64{}
	for _, f := range stats.ExportFiles {
		if st, err := os.Stat(filepath.Join(stats.CurrentExport(dir), f)); err == nil {
			rep.ExportFiles[f] = st.Size()
		}
	}
	rep.PeakRSS = peakRSS()
	// Last, as it holds a copy of the state for a while.
	var snap bytes.Buffer
	start = time.Now()
	if err := a.Snapshot(&snap); err != nil {
		return rep, err
	}
	rep.SnapshotWrite, rep.AcctSnapshot = time.Since(start), snap.Len()
	start = time.Now()
	if err := accounting.New().Restore(&snap); err != nil {
		return rep, err
	}
	rep.SnapshotRead = time.Since(start)
	runtime.KeepAlive(s)
	runtime.KeepAlive(a)
	return rep, nil
}

// measure asks for a page n times, one after another, after a few to warm
// up.
func measure(ctx context.Context, c *http.Client, base, name string, path func() string, n int) (Page, error) {
	p := Page{Name: name, Path: path(), Requests: n}
	get := func() (time.Duration, int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path(), nil)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, 0, err
		}
		b, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 && !(resp.StatusCode == 404 && req.URL.Path == "/nowhere") {
			err = fmt.Errorf("%s: %s", req.URL.Path, resp.Status)
		}
		return time.Since(start), int(b), err
	}
	for range min(n, 20) {
		if _, _, err := get(); err != nil {
			return p, err
		}
	}
	times := make([]time.Duration, n)
	cpu0, _ := bench.ProcessCPU()
	for i := range times {
		d, b, err := get()
		if err != nil {
			return p, err
		}
		times[i], p.Bytes = d, b
	}
	if cpu1, ok := bench.ProcessCPU(); ok {
		p.CPU = (cpu1 - cpu0) / time.Duration(n)
	}
	slices.Sort(times)
	p.P50, p.P99, p.Max = times[n/2], times[min(n-1, n*99/100)], times[n-1]
	return p, nil
}

// apply applies an encoded command to the scheduler, as a member applies a
// record of the log, and fails on an error reply.
type applier struct {
	m   fsm.StateMachine
	seq uint64
}

func (a *applier) entry(e fsm.Entry) []byte {
	a.seq++
	e.Seq = a.seq
	return a.m.Apply(e)
}

func (a *applier) command(op string, body any) error {
	reply := a.entry(fsm.Entry{Time: T0, Payload: wu.Encode(wu.Command{V: wu.WireVersion, Op: op, Host: "adm:bench", Body: wu.Encode(body)})})
	var ack wu.Ack
	if err := decode(reply, &ack); err != nil {
		return err
	}
	if ack.Error != nil {
		return fmt.Errorf("%s: %v", op, ack.Error)
	}
	return nil
}

var cpus = []struct{ vendor, model, os, version string }{
	{"GenuineIntel", "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "linux", "Ubuntu 24.04"},
	{"AuthenticAMD", "AMD Ryzen 9 5950X 16-Core Processor", "windows", "Windows 11 Pro"},
	{"Apple", "Apple M2", "darwin", "macOS 14.5"},
	{"AuthenticAMD", "AMD EPYC 7763 64-Core Processor", "linux", "Debian GNU/Linux 12"},
	{"ARM", "Cortex-A76", "linux", "Raspberry Pi OS 12"},
}

// zipf draws 0 ≤ k < n, small k far likelier: who gets a team's members,
// a busy host's grants.
func zipf(r *rand.Rand, n int, s float64) int {
	return min(n-1, int(math.Floor(math.Pow(float64(n)+1, math.Pow(r.Float64(), s)))-1))
}

func nkey(i int) string {
	var b [34]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
	return "U" + enc[:55]
}

// buildScheduler makes the teams, the users (most in a team) and attaches
// the hosts (several to some users) through the scheduler's Apply. It
// returns each host's user and team (by number, from 1; team 0: none)
// and each team's size.
func buildScheduler(cfg Config, r *rand.Rand) (*sched.Machine, [][2]int32, []int, error) {
	m := sched.New(sched.Config{Project: "bench"})
	a := &applier{m: m}
	a.entry(fsm.Entry{Tick: true, Time: T0})
	for t := range cfg.Teams {
		if err := a.command(wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "team-" + strconv.Itoa(t+1), Country: "Japan", Type: 1 + t%7}); err != nil {
			return nil, nil, nil, err
		}
	}
	userTeam := make([]int32, cfg.Users)
	sizes := make([]int, cfg.Teams)
	for u := range cfg.Users {
		add := wu.UserAdd{V: 1, Name: "volunteer-" + strconv.Itoa(u+1), Email: "volunteer-" + strconv.Itoa(u+1) + "@example.org",
			KeyHash: wu.AccountKeyHash("bench-key-" + strconv.Itoa(u+1)), CrossProjectID: fmt.Sprintf("%032x", r.Uint64())}
		if r.Float64() < 0.7 {
			t := zipf(r, cfg.Teams, 1.2)
			userTeam[u] = int32(t + 1)
			sizes[t]++
			add.Team = "team-" + strconv.Itoa(t+1)
		}
		if err := a.command(wu.OpUserAdd, add); err != nil {
			return nil, nil, nil, err
		}
	}
	owners := make([][2]int32, cfg.Hosts)
	for h := range cfg.Hosts {
		// Every user has a host; the others go mostly to a few users.
		u := h
		if h >= cfg.Users {
			u = zipf(r, cfg.Users, 1.5)
		}
		c := cpus[h%len(cpus)]
		flops := 1e9 + r.Float64()*9e9
		at := wu.Attach{V: 1, KeyHash: wu.AccountKeyHash("bench-key-" + strconv.Itoa(u+1)), NKey: nkey(h),
			Host: wu.HostInfo{Name: "host-" + strconv.Itoa(h+1), OS: c.os, OSVersion: c.version, Arch: "amd64", CPUs: 1 << r.IntN(6),
				CPUModel: c.model, CPUVendor: c.vendor, MemoryBytes: 8 << 30, FLOPS: flops, IOPS: 2 * flops, MemBytesPerSec: 1e10,
				DiskFreeBytes: 100 << 30, DiskTotalBytes: 500 << 30}}
		reply := a.entry(fsm.Entry{Time: T0, Payload: wu.Encode(wu.Command{V: 1, Op: wu.OpAttach, Body: wu.Encode(at)})})
		var rep wu.AttachReply
		if err := decode(reply, &rep); err != nil || rep.Error != nil {
			return nil, nil, nil, fmt.Errorf("attach host %d: %v %v", h, err, rep.Error)
		}
		owners[h] = [2]int32{int32(u + 1), userTeam[u]}
		if h%100000 == 99999 {
			cfg.Progress(fmt.Sprintf("scheduler: %d hosts attached", h+1))
		}
	}
	return m, owners, sizes, nil
}

// buildAccounting credits the grants through the accounting machine's
// Apply, in deliveries of a thousand, in time order as the scheduler
// grants them.
func buildAccounting(cfg Config, r *rand.Rand, owners [][2]int32) (*accounting.Machine, error) {
	span := float64(cfg.Days) * 86400
	type draw struct {
		at   int64 // seconds before T0
		host int32
	}
	draws := make([]draw, cfg.Grants)
	for i := range draws {
		if i < cfg.Hosts {
			draws[i] = draw{int64(r.Float64() * span), int32(i)}
			continue
		}
		// Busy hosts, lately.
		draws[i] = draw{int64(math.Pow(r.Float64(), 2) * span), int32(zipf(r, cfg.Hosts, 1.3))}
	}
	slices.SortFunc(draws, func(a, b draw) int { return int(b.at - a.at) })
	m := accounting.New()
	a := &applier{m: m}
	d := accounting.Delivery{V: accounting.Version, Source: sched.OutputSource}
	for i, dr := range draws {
		o := owners[dr.host]
		at := T0.Add(-time.Duration(dr.at) * time.Second)
		g := accounting.Grant{ID: uint64(i + 1), Task: "t", Host: "h" + strconv.Itoa(int(dr.host)+1), User: "u" + strconv.Itoa(int(o[0])),
			Credit: 1 + 49*r.Float64(), Sent: at.Add(-time.Hour), At: at}
		if o[1] != 0 {
			g.Team = "t" + strconv.Itoa(int(o[1]))
		}
		d.Grants = append(d.Grants, g)
		if len(d.Grants) == 1000 || i == len(draws)-1 {
			var rc accounting.Receipt
			if err := decode(a.entry(fsm.Entry{Time: T0, Payload: wu.Encode(d)}), &rc); err != nil || rc.Error != nil {
				return nil, fmt.Errorf("delivery: %v %v", err, rc.Error)
			}
			d.Grants = d.Grants[:0]
		}
		if i%1000000 == 999999 {
			cfg.Progress(fmt.Sprintf("accounting: %d grants", i+1))
		}
	}
	return m, nil
}

func decode(b []byte, v any) error { return json.Unmarshal(b, v) }

// member is a vpeer member over an empty log holding a machine built
// beforehand: queries reach the machine as a server's do.
type member struct{ m *vpeer.Member }

func (p member) Query(_ context.Context, fn func(*vpeer.Member)) error {
	p.m.Query(func() { fn(p.m) })
	return nil
}

func (p member) QueryLatest(ctx context.Context, fn func(*vpeer.Member)) error {
	return p.Query(ctx, fn)
}

func serve(ctx context.Context, machine fsm.StateMachine) (member, error) {
	m := vpeer.NewMember(vpeer.MemberConfig{Log: vpeer.NewMemLog(), Machine: machine, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
		return member{m}, nil
	case err := <-done:
		return member{}, fmt.Errorf("member: %w", err)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rss and peakRSS read /proc/self/status (Linux); 0 elsewhere.
func rss() uint64     { return procStatus("VmRSS:") }
func peakRSS() uint64 { return procStatus("VmHWM:") }

func procStatus(key string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
