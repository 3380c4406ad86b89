//go:build linux

package netlab

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Link is what a home link does to the connections through it (linkproxy's
// flags); the zero Link passes everything at once.
type Link struct {
	Latency  time.Duration // added in each direction: the round trip grows by twice this
	Jitter   time.Duration // plus or minus, on each delay
	UpKbps   int64         // kilobits per second towards the server (0: unlimited)
	DownKbps int64         // and from it
	// DropEvery drops every connection through the link at once this
	// often, as a home router that restarts or a NAT that forgets its
	// connections (0: never).
	DropEvery time.Duration
}

// LinkProxy is a running link: volunteers on its node connect to Addr
// instead of the server's address.
type LinkProxy struct {
	Addr string // host:port on the node's loopback
	cmd  *exec.Cmd
	done chan struct{}
}

// Link starts a link on n from its loopback to upstream (host:port, as n
// reaches it), and returns once it accepts connections. It is stopped when
// the test ends.
func (n *Node) Link(upstream string, link Link) *LinkProxy {
	t := n.lab.t
	t.Helper()
	if LinkProxyBinary == "" {
		t.Fatal("netlab.LinkProxyBinary is not set: build e2e/netlab/linkproxy in TestMain")
	}
	bin := LinkProxyBinary
	args := []string{bin, "--upstream", upstream,
		"--latency", link.Latency.String(), "--jitter", link.Jitter.String(),
		"--up-kbps", fmt.Sprint(link.UpKbps), "--down-kbps", fmt.Sprint(link.DownKbps),
		"--drop-every", link.DropEvery.String()}
	argv := n.Command(args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the link on %s: %v", n.Name, err)
	}
	p := &LinkProxy{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case p.Addr = <-addr:
	case <-p.done:
		t.Fatalf("the link on %s exited before listening", n.Name)
	case <-time.After(10 * time.Second):
		t.Fatalf("the link on %s is not listening after 10 s", n.Name)
	}
	return p
}

// Drop closes every connection through the link at once, as a router that
// restarts: new connections are accepted again straight away.
func (p *LinkProxy) Drop() error { return p.cmd.Process.Signal(syscall.SIGUSR1) }

// LinkProxyBinary is the path of the linkproxy command (built from
// github.com/momonga-project/momonga/e2e/netlab/linkproxy): the TestMain of
// a package whose tests use links builds it and sets this.
var LinkProxyBinary string
