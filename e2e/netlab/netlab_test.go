//go:build linux

package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if Unavailable() == "" {
		dir, err := os.MkdirTemp("", "netlab-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		LinkProxyBinary = filepath.Join(dir, "linkproxy")
		if out, err := exec.Command("go", "build", "-o", LinkProxyBinary, "./linkproxy").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build linkproxy: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// echo serves a line-echo server on n's address and returns its host:port.
func echo(t *testing.T, n *Node) string {
	t.Helper()
	ln, err := n.Listen("tcp", n.HostPort(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip dials addr from n, sends a line and reads it back.
func roundTrip(n *Node, addr string, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := n.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "ping\n" {
		return 0, fmt.Errorf("echo sent %q back", line)
	}
	return time.Since(start), nil
}

func TestPartitionAndHeal(t *testing.T) {
	lab := New(t)
	a, b, c := lab.Node("a"), lab.Node("b"), lab.Node("c")
	bAddr, cAddr := echo(t, b), echo(t, c)
	for _, n := range []*Node{a, c} {
		if _, err := roundTrip(n, bAddr, 5*time.Second); err != nil {
			t.Fatalf("%s cannot reach b on the whole network: %v", n.Name, err)
		}
	}
	// A connection open across the cut stops passing data, without a reset.
	open, err := a.Dial("tcp", bAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	lab.Cut(a)
	if _, err := roundTrip(a, bAddr, time.Second); err == nil {
		t.Fatal("a reaches b across the cut")
	}
	_ = open.SetDeadline(time.Now().Add(time.Second))
	_, _ = open.Write([]byte("ping\n"))
	if _, err := open.Read(make([]byte, 5)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection open across the cut: %v; want a time-out", err)
	}
	if _, err := roundTrip(c, bAddr, 5*time.Second); err != nil {
		t.Fatalf("c cannot reach b on its side of the cut: %v", err)
	}
	// A side of several hosts still reaches itself.
	lab.Partition([]*Node{a, c})
	if _, err := roundTrip(a, cAddr, 5*time.Second); err != nil {
		t.Fatalf("a cannot reach c on their side: %v", err)
	}
	if _, err := roundTrip(c, bAddr, time.Second); err == nil {
		t.Fatal("c reaches b across the partition")
	}

	lab.Heal()
	for _, n := range []*Node{a, c} {
		if _, err := roundTrip(n, bAddr, 5*time.Second); err != nil {
			t.Fatalf("%s cannot reach b after healing: %v", n.Name, err)
		}
	}
	// The connection open across the cut delivers what waited.
	_ = open.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(open, make([]byte, 5)); err != nil {
		t.Fatalf("the connection open across the cut after healing: %v", err)
	}
}

func TestLink(t *testing.T) {
	lab := New(t)
	home, server := lab.Node("home"), lab.Node("server")
	addr := echo(t, server)
	direct, err := roundTrip(home, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	link := home.Link(addr, Link{Latency: 100 * time.Millisecond})
	slow, err := roundTrip(home, link.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("round trip %v direct, %v through a link of 100 ms each way", direct, slow)
	if slow < 200*time.Millisecond {
		t.Errorf("round trip through the link %v; want at least 200 ms", slow)
	}

	c, err := home.Dial("tcp", link.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := link.Drop(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection through a dropped link: %v; want it closed", err)
	}
	// The link comes back up on the same address a moment after the
	// drop, as the client may see the drop first: it dials again.
	var rerr error
	if !wait.Until(5*time.Second, 50*time.Millisecond, func() bool {
		_, rerr = roundTrip(home, link.Addr, 5*time.Second)
		return rerr == nil
	}) {
		t.Fatalf("a new connection after the drop: %v", rerr)
	}
}

// TestLinkDropsConnectionsNowAndThen: a link that drops its connections
// every so often passes data between drops, closes the connections at a
// drop, and takes new ones.
func TestLinkDropsConnectionsNowAndThen(t *testing.T) {
	lab := New(t)
	home, server := lab.Node("home"), lab.Node("server")
	link := home.Link(echo(t, server), Link{Latency: 20 * time.Millisecond, DropEvery: time.Second})
	c, err := home.Dial("tcp", link.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("through the link before a drop: %q, %v", line, err)
	}
	_, err = io.Copy(io.Discard, r)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the link did not drop the connection within 5 s")
	}
	// The link comes back up on the same address a moment after the
	// drop, as the client may see the drop first: it dials again.
	var rerr error
	if !wait.Until(5*time.Second, 50*time.Millisecond, func() bool {
		_, rerr = roundTrip(home, link.Addr, 5*time.Second)
		return rerr == nil
	}) {
		t.Fatalf("a new connection after the drop: %v", rerr)
	}
}

// TestCleanup checks that a lab leaves nothing behind, and that Sweep
// removes what a dead process's lab left, processes included.
func TestCleanup(t *testing.T) {
	var names []string
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		n := lab.Node("n")
		argv := n.Command("sleep", "600")
		cmd := exec.Command(argv[0], argv[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait() }()
		names = []string{lab.hub, n.NS}
		// The process enters n's namespace before it runs sleep.
		if !wait.Until(5*time.Second, wait.Every, func() bool { return lab.Holds(cmd.Process.Pid) }) {
			t.Errorf("the lab does not hold process %d, started on its host %s", cmd.Process.Pid, n.Name)
		}
		if lab.Holds(os.Getpid()) {
			t.Error("the lab holds the test process, which runs outside it")
		}
	})
	left := namespaces()
	for _, ns := range names {
		if slices.Contains(left, ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}

	// A lab of a process that has died: a namespace named after a pid
	// that no longer runs, with a process in it.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("%s%d-1-left", Prefix, dead.Process.Pid)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("no network namespaces: %v: %s", err, out)
	}
	t.Cleanup(func() { deleteNamespace(ns) })
	orphan := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = orphan.Wait(); close(exited) }()
	Sweep()
	if slices.Contains(namespaces(), ns) {
		t.Errorf("Sweep left %s", ns)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Error("Sweep left the process running in the namespace it deleted")
	}
}
