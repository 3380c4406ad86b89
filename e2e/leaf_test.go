//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/momonga-project/momonga/e2e/netlab"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/auth"
	authprobe "github.com/momonga-project/momonga/project/auth/probe"
	wu "github.com/momonga-project/momonga/workunits"
)

// edge is a leaf-node server of a lab's cluster.
type edge struct {
	node *netlab.Node
	url  string
	proc *proc
	name string
	argv []string
	runs int
}

// restart kills the leaf's server and starts it again, on the same data
// and address, and waits until it serves.
func (e *edge) restart(c *labCluster) {
	c.t.Helper()
	e.proc.kill()
	e.runs++
	e.proc = start(c.t, c.dir, fmt.Sprintf("%s-%d", e.name, e.runs), e.argv...)
	e.proc.waitLine(servingLine, 90*time.Second)
}

// startEdges starts n leaf-node servers of c's core (serve --leaf-of),
// each on a host of its own with a copy of the core's keys, and waits until
// each can ask the core who a key belongs to.
func (c *labCluster) startEdges(n int) []*edge {
	c.t.Helper()
	var hubs []string
	for _, s := range c.servers {
		hubs = append(hubs, "nats://"+s.node.HostPort(leafPort))
	}
	var edges []*edge
	for i := range n {
		e := &edge{node: c.lab.Node(fmt.Sprintf("e%d", i+1))}
		e.url = "nats://" + e.node.HostPort(natsPort)
		dir := filepath.Join(c.dir, fmt.Sprintf("edge-%d", i+1))
		copyFiles(c.t, c.dataDir, dir, auth.KeysFile)
		e.name, e.runs = fmt.Sprintf("edge-%d", i+1), 1
		e.argv = e.node.Command(projectBin, "--verbose", "serve", "--data", dir,
			"--nats-listen", e.node.HostPort(natsPort), "--leaf-of", strings.Join(hubs, ","))
		e.proc = start(c.t, c.dir, e.name, e.argv...)
		edges = append(edges, e)
	}
	for _, e := range edges {
		e.proc.waitLine(servingLine, 90*time.Second)
		nc := c.connectTo(e.url)
		wait.For(c.t, time.Minute, e.node.Name+" to reach the core's directory", func() bool {
			_, err := nc.Request(auth.SubjectDirectoryHost, []byte("nobody"), 500*time.Millisecond)
			return err == nil
		})
		nc.Close()
	}
	return edges
}

// connectTo connects the project's tools to one server.
func (c *labCluster) connectTo(url string) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(url, c.toolOptions()...)
	if err != nil {
		c.t.Fatalf("connect to %s from %s: %v", url, c.tools.Name, err)
	}
	return nc
}

// probeHost is a host the test attaches itself, to act as a volunteer
// would with its credentials.
type probeHost struct {
	id string
	kp nkeys.KeyPair
}

// attachProbe makes a user called name and attaches a host of it through
// url, from node, as `momonga attach` does.
func (c *labCluster) attachProbe(name string, node *netlab.Node, url string) probeHost {
	c.t.Helper()
	m := accountKeyLine.FindStringSubmatch(c.mustCLI("user add", name))
	if m == nil {
		c.t.Fatalf("user add %s printed no account key", name)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	// The server that answers the leaf's question about the new account
	// key may not have applied the user yet: it says no, for a moment.
	var nc *nats.Conn
	var err error
	if !wait.Until(30*time.Second, pollEvery, func() bool {
		nc, err = nats.Connect(url, nats.SetCustomDialer(node), nats.UserInfo(wu.AttachUserName(pub), m[1]), nats.CustomInboxPrefix(wu.InboxPrefix(pub)))
		return err == nil
	}) {
		c.t.Fatalf("attach %s through %s: %v", name, url, err)
	}
	defer nc.Close()
	msg, err := nc.Request(wu.AttachSubject(pub), wu.Encode(wu.AttachRequest{V: wu.WireVersion, AccountKey: m[1], NKey: pub, Host: wu.HostInfo{Name: name}}), 10*time.Second)
	if err != nil {
		c.t.Fatalf("attach %s: %v", name, err)
	}
	var rep wu.AttachReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error != nil || rep.Host == "" {
		c.t.Fatalf("attach %s: reply %s (%v)", name, msg.Data, err)
	}
	return probeHost{id: rep.Host, kp: kp}
}

// connectAs connects to url from node with h's credentials.
func connectAs(h probeHost, node *netlab.Node, url string, opts ...nats.Option) (*nats.Conn, error) {
	pub, _ := h.kp.PublicKey()
	return nats.Connect(url, append([]nats.Option{nats.SetCustomDialer(node), nats.Nkey(pub, h.kp.Sign),
		nats.CustomInboxPrefix(wu.InboxPrefix(h.id)), nats.NoReconnect(), nats.Timeout(5 * time.Second)}, opts...)...)
}

// helloAs sends h's hello on nc and waits for the answer.
func helloAs(nc *nats.Conn, h probeHost) error {
	msg, err := nc.Request(wu.VolunteerSubject(h.id, wu.OpHello), wu.Encode(wu.Hello{V: wu.WireVersion, Host: wu.HostInfo{Name: h.id, CPUs: 1}}), 5*time.Second)
	if err != nil {
		return err
	}
	var rep wu.HelloReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return err
	}
	if rep.Error != nil {
		return rep.Error
	}
	return nil
}

// isolated runs the security tests' probes (project/auth/probe) as a,
// through url, from node: everything that is b's or the project's must be
// refused there as on the core.
func isolated(t *testing.T, a, b probeHost, node *netlab.Node, url string) {
	t.Helper()
	var errs authprobe.Errors
	nc, err := connectAs(a, node, url, nats.ErrorHandler(errs.Handler))
	if err != nil {
		t.Fatalf("%s through %s: %v", a.id, url, err)
	}
	defer nc.Close()
	if err := helloAs(nc, a); err != nil {
		t.Fatalf("%s's own request through %s: %v", a.id, url, err)
	}
	if err := authprobe.Isolation(nc, &errs, a.id, b.id, 10*time.Second); err != nil {
		t.Errorf("through %s: %v", url, err)
	}
}

var connectedLine = regexp.MustCompile(`time=(\S+) .*msg="connected to the project" .*server=(nats://\S+)`)

// serverAt is the server a real client said it was connected to at time
// at, and when it said that it moved to another after at (zero: not yet).
func serverAt(t *testing.T, p *proc, at time.Time) (server string, moved time.Time, to string) {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range connectedLine.FindAllStringSubmatch(string(b), -1) {
		when, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		if !when.After(at) {
			server = m[2]
		} else if moved.IsZero() && m[2] != server {
			moved, to = when, m[2]
		}
	}
	return server, moved, to
}

// TestLeafNodesAtTheEdge serves a project from three core servers, each on
// a host of its own, to volunteers that connect through two leaf-node
// servers at the edge, each volunteer on a host of its own and given both.
// A host has the same permissions through either leaf as on the core (the
// security tests' probes). During a batch one leaf is cut off from the
// network: its volunteers must move to the other within seconds (they ping
// their server every few seconds), nothing is lost or done twice.
func TestLeafNodesAtTheEdge(t *testing.T) {
	t.Parallel() // on a lab of its own, as every test of a lab (checkNoWorkersIn)
	// Leases long enough for a volunteer to move to the other leaf without
	// losing its task; beats every second so that the log shows at once
	// when a volunteer is served again.
	c := newLabCluster(t, projectBin, 3, "--lease", "20s", "--beat", "1s")
	edges := c.startEdges(2)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()

	// Permissions through each leaf, as on the core.
	pn := c.lab.Node("probe")
	ann, bob := c.attachProbe("ann", pn, edges[0].url), c.attachProbe("bob", pn, edges[1].url)
	for _, url := range []string{edges[0].url, edges[1].url, c.servers[0].url} {
		isolated(t, ann, bob, pn, url)
		isolated(t, bob, ann, pn, url)
	}

	c.mustCLI("app add", "primes", primesWasm)
	adm, err := admin.Dial(ctx, c.url, c.toolOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	js, err := jetstream.New(c.connect())
	if err != nil {
		t.Fatal(err)
	}
	const units = 40
	sub := wu.Submit{Batch: "edge", App: "primes", Replication: 1, Quorum: 1, DeadlineSeconds: 3600}
	for i := range units {
		sub.Units = append(sub.Units, wu.UnitSpec{Args: []string{fmt.Sprint(i * 400_000), fmt.Sprint((i + 1) * 400_000)}})
	}
	ids, err := adm.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, id := range ids {
		tasks = append(tasks, id+"_0")
	}
	const volunteers = 4
	vols := map[string]*proc{}
	for i := range volunteers {
		name := fmt.Sprintf("v%d", i+1)
		both := []string{edges[i%2].url, edges[1-i%2].url}
		vols[name] = c.startClientIn(name, c.lab.Node(name).Command, strings.Join(both, ","))
	}
	c.waitStatus(2*time.Minute, "a quarter of the batch done", func(st wu.StatusReply) bool {
		b, _ := batchStatus(st, "edge")
		return b.Valid >= units/4
	})

	// Cut off the leaf that serves more volunteers.
	at := map[string]string{}
	count := map[string]int{}
	now := time.Now()
	for name, p := range vols {
		s, _, _ := serverAt(t, p, now)
		at[name] = s
		count[s]++
	}
	victim, other := edges[0], edges[1]
	if count[edges[1].url] > count[edges[0].url] {
		victim, other = other, victim
	}
	cut := time.Now()
	c.lab.Cut(victim.node)
	t.Logf("%s: cut off %s, the leaf of %d of the %d volunteers", cut.Format(time.TimeOnly), victim.node.Name, count[victim.url], volunteers)
	var moved []string
	for name, p := range vols {
		if at[name] != victim.url {
			continue
		}
		var when time.Time
		var to string
		wait.For(t, time.Minute, name+" to move to the other leaf", func() bool {
			_, when, to = serverAt(t, p, cut)
			return !when.IsZero()
		})
		if to != other.url {
			t.Errorf("%s moved to %s, not to the other leaf %s", name, to, other.url)
		}
		if d := when.Sub(cut); d > 20*time.Second {
			t.Errorf("%s took %.1f s to move to the other leaf; want seconds", name, d.Seconds())
		}
		moved = append(moved, fmt.Sprintf("%s in %.1f s", name, when.Sub(cut).Seconds()))
	}
	t.Logf("volunteers moved to %s: %s", other.node.Name, strings.Join(moved, ", "))
	healed := time.Now()
	c.lab.Heal()
	var back time.Time
	wait.For(t, time.Minute, victim.node.Name+" to serve again", func() bool {
		nc, err := connectAs(ann, pn, victim.url)
		if err != nil {
			return false
		}
		defer nc.Close()
		if helloAs(nc, ann) != nil {
			return false
		}
		back = time.Now()
		return true
	})

	st := c.waitBatchDone("edge", 4*time.Minute)
	if b, _ := batchStatus(st, "edge"); b.Valid != units || b.Tasks[wu.TaskReported] != units {
		t.Errorf("batch: %+v; want all %d units valid, each task reported once", b, units)
	}
	recs := readLog(t, js)
	f := faultNumbers{name: fmt.Sprintf("leaf %s cut off for %.0f s", victim.node.Name, healed.Sub(cut).Seconds()), recover: back.Sub(healed)}
	f.unavailable = longestSilence(volunteerTimes(recs, nil), cut, back)
	f.workLost = workLost(recs, tasks...)
	f.log(t)
}
