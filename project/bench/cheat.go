package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Cheat runs the cheating simulation (`momonga-project bench cheat`): a
// batch of work units computed by simulated hosts, some of which return
// wrong results, through the real scheduler state machine (sched.Machine,
// in-process, no NATS), and counts what validation let through.
//
// Hosts are picked at random to ask for one task at a time and report it at
// once. Every host belongs to its own user, so the rule that two replicas of
// a unit never go to one user does not help the cheaters or hinder them.

// Strategy is how a simulated host computes.
type Strategy string

// Strategies of simulated hosts.
const (
	Honest Strategy = "honest"
	// Random returns a wrong result of its own every time: replicas of
	// different cheaters never agree.
	Random Strategy = "random"
	// Collude returns the same wrong result as every other colluder for the
	// same unit, so two colluders holding both replicas make a quorum.
	Collude Strategy = "collude"
	// Sleeper computes honestly for its first SleeperHonest tasks, long
	// enough to be trusted by adaptive replication, then returns wrong
	// results of its own.
	Sleeper Strategy = "sleeper"
)

// SleeperHonest is how many tasks a Sleeper computes honestly.
const SleeperHonest = 30

// Scenario is one row of the simulation.
type Scenario struct {
	Name     string               `json:"name"`
	Cheaters map[Strategy]float64 `json:"cheaters"` // fraction of hosts per strategy; the rest are honest
	Adaptive bool                 `json:"adaptive"`
}

// CheatConfig says what Cheat simulates.
type CheatConfig struct {
	Units       int     // work units in the batch; default 10,000
	Hosts       int     // simulated hosts, each its own user; default 200
	Replication int     // default 2
	Quorum      int     // default 2
	TrustAfter  int     // adaptive replication: consecutive agreeing results before a host gets single replicas; default 10
	SpotCheck   float64 // adaptive replication: least probability a trusted host's unit is replicated; default 0.1
	// InflateClaims makes cheating hosts claim this many times their real
	// CPU time, to show that the lowest claim among replicas and the cap by
	// the work's size keep their credit honest; default 10.
	InflateClaims float64
	Seed          uint64
	Scenarios     []Scenario // default DefaultScenarios()
	Progress      func(CheatRow)
}

// DefaultScenarios are the rows of `momonga-project bench cheat`.
func DefaultScenarios() []Scenario {
	var s []Scenario
	for _, adaptive := range []bool{false, true} {
		s = append(s,
			Scenario{Name: "all honest", Cheaters: map[Strategy]float64{}, Adaptive: adaptive},
			Scenario{Name: "5% wrong", Cheaters: map[Strategy]float64{Random: 0.05}, Adaptive: adaptive},
			Scenario{Name: "1% colluding", Cheaters: map[Strategy]float64{Collude: 0.01}, Adaptive: adaptive},
			Scenario{Name: "5% wrong + 1% colluding", Cheaters: map[Strategy]float64{Random: 0.05, Collude: 0.01}, Adaptive: adaptive},
			Scenario{Name: "5% sleepers", Cheaters: map[Strategy]float64{Sleeper: 0.05}, Adaptive: adaptive},
		)
	}
	return s
}

// CheatRow is the outcome of one scenario.
type CheatRow struct {
	Scenario
	Units          int     `json:"units"`
	CheatingHosts  int     `json:"cheating_hosts"`
	WrongAccepted  int     `json:"wrong_accepted"` // valid units whose canonical result is wrong
	Errored        int     `json:"errored"`        // units that found no quorum
	ReplicasPerWU  float64 `json:"replicas_per_unit"`
	SingleUnits    int     `json:"single_units"`    // units validated from one result (adaptive)
	CheaterCredit  float64 `json:"cheater_credit"`  // Cobblestones granted to cheating hosts
	CreditShare    float64 `json:"credit_share"`    // of all credit granted
	CheaterResults int     `json:"cheater_results"` // results cheating hosts returned
	WrongReturned  int     `json:"wrong_returned"`  // of which wrong
	Seconds        float64 `json:"seconds"`         // wall time of the scenario
	EntriesPerSec  float64 `json:"entries_per_sec"` // log entries the state machine applied per second
	CheaterCaught  int     `json:"cheaters_caught"` // cheating hosts with at least one invalid result
	HonestInvalid  int     `json:"honest_invalid"`  // invalid results of honest hosts (should be 0)
}

// Cheat runs every scenario and returns one row each.
func Cheat(ctx context.Context, cfg CheatConfig) ([]CheatRow, error) {
	if cfg.Units <= 0 {
		cfg.Units = 10_000
	}
	if cfg.Hosts <= 0 {
		cfg.Hosts = 200
	}
	if cfg.Replication <= 0 {
		cfg.Replication = 2
	}
	if cfg.Quorum <= 0 {
		cfg.Quorum = 2
	}
	if cfg.InflateClaims <= 0 {
		cfg.InflateClaims = 10
	}
	if cfg.Scenarios == nil {
		cfg.Scenarios = DefaultScenarios()
	}
	var rows []CheatRow
	for _, sc := range cfg.Scenarios {
		if err := ctx.Err(); err != nil {
			return rows, err
		}
		row, err := runCheat(ctx, cfg, sc)
		if err != nil {
			return rows, fmt.Errorf("scenario %q: %w", sc.Name, err)
		}
		if cfg.Progress != nil {
			cfg.Progress(row)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// simulation drives one Machine the way a vpeer member would.
type simulation struct {
	m   *sched.Machine
	seq uint64
	now time.Time
	hs  map[string]uint64
}

func (s *simulation) apply(cmd wu.Command, out any) error {
	s.seq++
	return reply(s.m.Apply(vpeer.Entry{Seq: s.seq, Time: s.now, Payload: wu.Encode(cmd)}), out)
}

// reply reads the scheduler's answer to a command: its error, or else the
// answer into out, when out is not nil.
func reply(raw []byte, out any) error {
	var ack wu.Ack
	if err := json.Unmarshal(raw, &ack); err != nil {
		return err
	}
	if ack.Error != nil {
		return ack.Error
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (s *simulation) request(host, op string, body any, out any) error {
	s.hs[host]++
	return s.apply(wu.Command{V: wu.WireVersion, Op: op, Host: host, Seq: s.hs[host], Body: wu.Encode(body)}, out)
}

type simHost struct {
	id       string
	strategy Strategy
	done     int
}

func runCheat(ctx context.Context, cfg CheatConfig, sc Scenario) (CheatRow, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6f6d6f6e6761))
	s := &simulation{
		m: sched.New(sched.Config{Project: "cheat", Lease: time.Hour, TrustAfter: cfg.TrustAfter, SpotCheck: cfg.SpotCheck,
			DeadlineSecs: 30 * 86400}),
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		hs:  map[string]uint64{},
	}
	s.seq++
	s.m.Apply(vpeer.Entry{Seq: s.seq, Time: s.now, Tick: true})

	// Hosts: a shuffled assignment of strategies, each host its own user.
	strategies := make([]Strategy, cfg.Hosts)
	for i := range strategies {
		strategies[i] = Honest
	}
	next := 0
	row := CheatRow{Scenario: sc, Units: cfg.Units}
	for _, st := range []Strategy{Random, Collude, Sleeper} {
		n := int(sc.Cheaters[st]*float64(cfg.Hosts) + 0.5)
		for i := 0; i < n && next < cfg.Hosts; i++ {
			strategies[next] = st
			next++
			row.CheatingHosts++
		}
	}
	rng.Shuffle(len(strategies), func(i, j int) { strategies[i], strategies[j] = strategies[j], strategies[i] })
	hosts := make([]*simHost, cfg.Hosts)
	for i := range hosts {
		name := "user" + strconv.Itoa(i)
		key := fmt.Sprintf("account-key-of-%s", name)
		if err := s.apply(wu.Command{V: wu.WireVersion, Op: wu.OpUserAdd, Body: wu.Encode(wu.UserAdd{V: wu.WireVersion, Name: name, KeyHash: wu.AccountKeyHash(key)})}, nil); err != nil {
			return row, err
		}
		nkey := simNKey(i)
		var ar wu.AttachReply
		if err := s.apply(wu.Command{V: wu.WireVersion, Op: wu.OpAttach, Body: wu.Encode(wu.Attach{V: wu.WireVersion, KeyHash: wu.AccountKeyHash(key), NKey: nkey,
			Host: wu.HostInfo{Name: name, CPUs: 1, FLOPS: 2e9}})}, &ar); err != nil {
			return row, err
		}
		hosts[i] = &simHost{id: ar.Host, strategy: strategies[i]}
		var hr wu.HelloReply
		if err := s.apply(wu.Command{V: wu.WireVersion, Op: wu.OpHello, Host: ar.Host, Body: wu.Encode(wu.Hello{V: wu.WireVersion, Host: wu.HostInfo{Name: name, CPUs: 1, FLOPS: 2e9}})}, &hr); err != nil {
			return row, err
		}
		s.hs[ar.Host] = hr.NextSeq - 1
	}
	module := []byte("cheat-sim")
	const fpops = 1e12 // each unit: 10^12 operations, 500 s on a 2 GFLOPS host
	pol := wu.Policy{Replication: cfg.Replication, Quorum: cfg.Quorum, Adaptive: sc.Adaptive, FPOps: fpops}
	if err := s.request("adm:bench", wu.OpAddApp, wu.AddApp{V: wu.WireVersion, Name: "sim", Hash: wu.HashOf(module), Size: int64(len(module)), Policy: pol}, nil); err != nil {
		return row, err
	}
	for start := 0; start < cfg.Units; start += wu.MaxUnitsPerSubmit {
		sub := wu.Submit{V: wu.WireVersion, Batch: "sim", App: "sim"}
		for i := start; i < min(start+wu.MaxUnitsPerSubmit, cfg.Units); i++ {
			sub.Units = append(sub.Units, wu.UnitSpec{Name: "u" + strconv.Itoa(i), Args: []string{strconv.Itoa(i)}})
		}
		if err := s.request("adm:bench", wu.OpSubmit, sub, nil); err != nil {
			return row, err
		}
	}

	started := time.Now()
	startSeq := s.seq
	right := func(unit string) wu.Hash { return wu.HashOf([]byte("right " + unit)) }
	idle := 0
	for idle < 50*cfg.Hosts {
		if idle%1000 == 999 && ctx.Err() != nil {
			return row, ctx.Err()
		}
		h := hosts[rng.IntN(len(hosts))]
		var rep wu.WorkReply
		if err := s.request(h.id, wu.OpWork, wu.WorkRequest{V: wu.WireVersion, Seq: 1, Slots: 1}, &rep); err != nil {
			return row, err
		}
		if len(rep.Assignments) == 0 {
			idle++
			continue
		}
		idle = 0
		a := rep.Assignments[0]
		out := right(a.WorkUnit)
		wrong := false
		switch h.strategy {
		case Random:
			wrong = true
			out = wu.HashOf([]byte(fmt.Sprintf("wrong %s %s %d", a.WorkUnit, h.id, h.done)))
		case Collude:
			wrong = true
			out = wu.HashOf([]byte("agreed wrong " + a.WorkUnit))
		case Sleeper:
			if h.done >= SleeperHonest {
				wrong = true
				out = wu.HashOf([]byte(fmt.Sprintf("wrong %s %s", a.WorkUnit, h.id)))
			}
		}
		cpu := 400 + 200*rng.Float64()
		if h.strategy != Honest {
			row.CheaterResults++
			if wrong {
				row.WrongReturned++
			}
			cpu *= cfg.InflateClaims
		}
		h.done++
		s.now = s.now.Add(time.Second)
		if err := s.request(h.id, wu.OpResult, wu.Report{V: wu.WireVersion, Seq: 1, Task: a.Task, Outcome: wu.OutcomeSuccess,
			Output: out, OutputSize: 16, CPUSeconds: cpu}, nil); err != nil {
			return row, err
		}
	}
	row.Seconds = time.Since(started).Seconds()
	row.EntriesPerSec = float64(s.seq-startSeq) / row.Seconds

	res, err := s.m.Results(wu.ResultsQuery{V: wu.WireVersion, Batch: "sim"})
	if err != nil {
		return row, err
	}
	for off := res.Next; off != 0; {
		page, err := s.m.Results(wu.ResultsQuery{V: wu.WireVersion, Batch: "sim", Offset: off})
		if err != nil {
			return row, err
		}
		res.Units = append(res.Units, page.Units...)
		off = page.Next
	}
	tasks := 0
	for _, u := range res.Units {
		tasks += u.Tasks
		switch u.State {
		case wu.WorkUnitValid:
			if u.Output != right(u.ID) {
				row.WrongAccepted++
			}
			if u.Tasks == 1 {
				row.SingleUnits++
			}
		case wu.WorkUnitError:
			row.Errored++
		default:
			return row, fmt.Errorf("unit %s still %s when no host could take more work", u.ID, u.State)
		}
	}
	row.ReplicasPerWU = float64(tasks) / float64(len(res.Units))
	strategy := map[string]Strategy{}
	for _, h := range hosts {
		strategy[h.id] = h.strategy
	}
	// The scheduler's grants counted as the accounting peer counts them.
	acct := accounting.New()
	if rc := acct.Receive(accounting.Delivery{V: accounting.Version, Source: "sched", Grants: s.m.Outbox(0)}); rc.Error != nil {
		return row, fmt.Errorf("accounting: %v", rc.Error)
	}
	st := s.m.Status()
	acct.Ledger("sched", nil).Fill(st.Now, st.Hosts, st.Users, st.Teams)
	total := 0.0
	for _, hs := range st.Hosts {
		total += hs.Credit
		if strategy[hs.ID] == Honest {
			row.HonestInvalid += hs.Invalid
			continue
		}
		row.CheaterCredit += hs.Credit
		if hs.Invalid > 0 {
			row.CheaterCaught++
		}
	}
	if total > 0 {
		row.CreditShare = row.CheaterCredit / total
	}
	return row, nil
}

// simNKey makes up a distinct well-formed public nkey for simulated host i.
func simNKey(i int) string {
	b := []byte("U" + strings.Repeat("A", 55))
	for p := len(b) - 1; i > 0; p-- {
		b[p] = byte('A' + i%26)
		i /= 26
	}
	return string(b)
}
