//go:build linux

// Package netlab is a network for tests: hosts with addresses of their own,
// each a Linux network namespace, joined by a bridge, on which a test runs
// the real momonga-project and momonga processes and then breaks the
// network between them (DESIGN §11). It can cut any set of hosts off from
// the others and heal them, and put a slow, lossy link (linkproxy, on
// toxiproxy) between a volunteer and its server.
//
// The bridges live in a namespace of their own (the lab's hub), so a lab
// touches nothing outside the namespaces it made: its addresses
// (198.18.0.0/24, the range set aside for network tests) are reachable from
// its hosts only, and from the test process through Node.Dial. A partition
// moves hosts' ports to other bridges: packets between the sides are
// dropped, as on a broken link, without a reset. Every namespace a lab makes
// is named "mlab-PID-…" after the test process: New deletes those of
// processes that have died (with whatever still runs in them), and a lab
// deletes its own, and kills what runs there, when its test ends, whether
// it passed or failed.
//
// Everything needs root and iproute2's ip; New skips the test, saying why,
// where it cannot run.
package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace a lab makes.
const Prefix = "mlab-"

// subnet is the lab's addresses; hosts get .10 upwards.
var subnet = netip.MustParsePrefix("198.18.0.0/24")

// Lab is a set of hosts on a bridge. Make one with New.
type Lab struct {
	t      testing.TB
	prefix string // namespace names start with it
	hub    string // the namespace holding the bridges

	mu      sync.Mutex
	nodes   []*Node
	bridges int // bridges made: br0 is the whole network, the others sides of a partition
}

// Node is one host of the lab: a network namespace with one interface on
// the lab's bridge.
type Node struct {
	Name string
	NS   string     // the namespace's name, for `ip netns exec`
	Addr netip.Addr // its address on the lab's network
	lab  *Lab
	port string // its veth end in the hub
}

// New makes a lab for t, or skips t when this machine cannot run one: not
// root, no ip command, no network namespaces. It first deletes what labs of
// dead processes left behind. The lab is deleted when t ends.
func New(t testing.TB) *Lab {
	t.Helper()
	if reason := Unavailable(); reason != "" {
		t.Skip(reason)
	}
	Sweep()
	l := &Lab{t: t, prefix: fmt.Sprintf("%s%d-%s-", Prefix, os.Getpid(), labID())}
	l.hub = l.prefix + "hub"
	t.Cleanup(l.close)
	if err := l.ip("netns", "add", l.hub); err != nil {
		t.Skipf("no network namespaces: %v", err)
	}
	l.mustIP("-n", l.hub, "link", "set", "lo", "up")
	l.bridge()
	return l
}

var labs struct {
	sync.Mutex
	n int
}

// labID tells the labs of one process apart.
func labID() string {
	labs.Lock()
	defer labs.Unlock()
	labs.n++
	return strconv.Itoa(labs.n)
}

// Unavailable says why labs cannot run here, or "" when they can.
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "the network lab needs root (network namespaces, veth pairs, bridges)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the network lab needs the ip command (Debian package iproute2)"
	}
	return ""
}

var nsName = regexp.MustCompile(`^` + Prefix + `(\d+)-`)

// Sweep deletes the namespaces of labs whose process has died, and kills
// whatever still runs in them.
func Sweep() {
	for _, ns := range namespaces() {
		m := nsName.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		deleteNamespace(ns)
	}
}

// namespaces lists the named network namespaces.
func namespaces() []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// deleteNamespace kills the processes in ns, waits for them to go, and
// deletes it.
func deleteNamespace(ns string) {
	for range 50 {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond) // the kernel reaps them; nothing to poll but the list
	}
	_ = exec.Command("ip", "netns", "del", ns).Run()
}

func (l *Lab) close() {
	l.mu.Lock()
	nodes := l.nodes
	l.mu.Unlock()
	for _, n := range nodes {
		deleteNamespace(n.NS)
	}
	deleteNamespace(l.hub)
}

func (l *Lab) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) mustIP(args ...string) {
	l.t.Helper()
	if err := l.ip(args...); err != nil {
		l.t.Fatal(err)
	}
}

// bridge makes the next bridge in the hub and returns its name.
func (l *Lab) bridge() string {
	l.mu.Lock()
	name := "br" + strconv.Itoa(l.bridges)
	l.bridges++
	l.mu.Unlock()
	l.mustIP("-n", l.hub, "link", "add", name, "type", "bridge")
	l.mustIP("-n", l.hub, "link", "set", name, "up")
	return name
}

// Node adds a host called name (letters, digits, '-') to the lab, on the
// whole network.
func (l *Lab) Node(name string) *Node {
	l.t.Helper()
	l.mu.Lock()
	i := len(l.nodes)
	l.mu.Unlock()
	addr := subnet.Addr()
	for range 10 + i {
		addr = addr.Next()
	}
	n := &Node{Name: name, NS: l.prefix + name, Addr: addr, lab: l, port: "v" + strconv.Itoa(i)}
	l.mustIP("netns", "add", n.NS)
	l.mu.Lock()
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()
	l.mustIP("-n", n.NS, "link", "set", "lo", "up")
	l.mustIP("-n", l.hub, "link", "add", n.port, "type", "veth", "peer", "name", "eth0", "netns", n.NS)
	l.mustIP("-n", l.hub, "link", "set", n.port, "master", "br0", "up")
	l.mustIP("-n", n.NS, "addr", "add", netip.PrefixFrom(addr, subnet.Bits()).String(), "dev", "eth0")
	l.mustIP("-n", n.NS, "link", "set", "eth0", "up")
	return n
}

// Nodes are the lab's hosts, in the order they were added.
func (l *Lab) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Node(nil), l.nodes...)
}

// Partition cuts the network into sides: each group reaches only its own
// members, and hosts in no group stay together on the rest of the network.
// Packets across are dropped (no reset), as on a broken link. It replaces
// any partition before it.
func (l *Lab) Partition(groups ...[]*Node) {
	l.t.Helper()
	side := map[*Node]string{}
	for i, g := range groups {
		br := "br" + strconv.Itoa(i+1)
		l.mu.Lock()
		exists := i+1 < l.bridges
		l.mu.Unlock()
		if !exists {
			br = l.bridge()
		}
		for _, n := range g {
			side[n] = br
		}
	}
	for _, n := range l.Nodes() {
		br, ok := side[n]
		if !ok {
			br = "br0"
		}
		l.mustIP("-n", l.hub, "link", "set", n.port, "master", br)
	}
}

// Cut cuts nodes off from the rest of the network: they still reach one
// another.
func (l *Lab) Cut(nodes ...*Node) { l.t.Helper(); l.Partition(nodes) }

// Heal puts every host back on the whole network.
func (l *Lab) Heal() { l.t.Helper(); l.Partition() }

// Holds reports whether process pid runs on one of the lab's hosts (in
// its network namespace).
func (l *Lab) Holds(pid int) bool {
	ns, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return false
	}
	for _, n := range l.Nodes() {
		if fi, err := os.Stat(filepath.Join("/var/run/netns", n.NS)); err == nil && os.SameFile(ns, fi) {
			return true
		}
	}
	return false
}

// Command is argv run in n's namespace, as a process of its own: `ip netns
// exec` replaces itself with argv[0], so the process's id is argv[0]'s.
// The lab kills it when its test ends if it still runs then.
func (n *Node) Command(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.NS}, argv...)
}

// HostPort is n's address with port.
func (n *Node) HostPort(port int) string {
	return netip.AddrPortFrom(n.Addr, uint16(port)).String()
}

// Dial opens a TCP connection from inside n's namespace: to its loopback
// (which no partition cuts) or to another host as n would. It makes n a
// nats.CustomDialer, so the test process can talk to a server as if it
// ran on n.
func (n *Node) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context.
func (n *Node) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := n.in(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	return conn, err
}

// Listen listens on a TCP address inside n's namespace.
func (n *Node) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := n.in(func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// in runs fn on an OS thread moved into n's namespace, where the sockets fn
// makes are made. Sockets keep their namespace once made, so they can be
// used from any goroutine afterwards. fn runs on a goroutine of its own:
// should the thread fail to leave the namespace, it ends with that
// goroutine instead of running anything else there.
func (n *Node) in(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: own namespace: %w", err)
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", n.NS))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: namespace of %s: %w", n.Name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: enter the namespace of %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netlab: leave the namespace of %s: %w", n.Name, err))
			return // locked: the thread ends with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
