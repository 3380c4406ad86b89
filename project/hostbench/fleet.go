// Package hostbench measures what attached volunteer hosts cost a secured
// project's NATS servers, by the ten thousand (`momonga-project bench
// hosts`, DESIGN §11): hosts attached through the project as `momonga
// attach` attaches them, each then connected with its own credentials
// through the auth callout, as the client connects (client/daemon's
// ConnectOptions), and saying hello. A Fleet holds many such hosts in one
// process. Run starts servers of a given momonga-project binary on this
// machine and measures their memory per attached and per connected host,
// the rate hosts connect at, and the storm of reconnections after a server
// restarts.
package hostbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/momonga-project/momonga/client/daemon"
	wu "github.com/momonga-project/momonga/workunits"
)

// Host is an attached host: its id and key.
type Host struct {
	ID string
	KP nkeys.KeyPair
}

// requestTimeout bounds one attach or hello.
const requestTimeout = 30 * time.Second

// connectTries is how often a host tries to connect before the bench
// gives up on it.
const connectTries = 20

// Attach attaches n hosts to one new user, through the project's own
// connection adm (its admin credentials): each sends the attach request
// `momonga attach` sends, for a key of its own, and the project records
// it as it records any attached host. concurrency requests are in flight
// at once.
func Attach(ctx context.Context, adm *nats.Conn, accountKey string, n, concurrency int) ([]Host, error) {
	hosts := make([]Host, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for range max(concurrency, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				h, err := attachOne(ctx, adm, accountKey, i)
				if err != nil {
					errs <- err
					return
				}
				hosts[i] = h
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(<-errs, ctx.Err()); err != nil {
		return nil, fmt.Errorf("attach hosts: %w", err)
	}
	return hosts, nil
}

func attachOne(ctx context.Context, adm *nats.Conn, accountKey string, i int) (Host, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Host{}, err
	}
	pub, _ := kp.PublicKey()
	req := wu.AttachRequest{V: wu.WireVersion, AccountKey: accountKey, NKey: pub, Host: wu.HostInfo{Name: fmt.Sprintf("bench-%d", i), CPUs: 1}}
	var rep wu.AttachReply
	for {
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		msg, err := adm.RequestWithContext(actx, wu.AttachSubject(pub), wu.Encode(req))
		cancel()
		if err != nil {
			return Host{}, fmt.Errorf("attach host %d: %w", i, err)
		}
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			return Host{}, fmt.Errorf("attach host %d: %w", i, err)
		}
		if rep.Error == nil || (rep.Error.Code != wu.CodeUnavailable && rep.Error.Code != wu.CodeRateLimited) {
			break
		}
		select {
		case <-ctx.Done():
			return Host{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if rep.Error != nil || rep.Host == "" {
		return Host{}, fmt.Errorf("attach host %d: refused: %v", i, rep.Error)
	}
	return Host{ID: rep.Host, KP: kp}, nil
}

// dialTimeout bounds the opening of a host's TCP connection.
const dialTimeout = 5 * time.Second

// closingDialer closes the connection it opened before when it opens the
// next. A NATS client whose handshake fails (a server that refuses it, or
// does not answer in time) tries again on a new connection and leaves the
// failed one to the garbage collector to close: a host, alone in its
// process, holds one more file a while; a fleet of 10^4 in one process,
// storming a server that refuses most of them, runs out of files, and the
// bench would measure its own starvation.
type closingDialer struct {
	d    Dialer
	mu   sync.Mutex
	last net.Conn
}

func (c *closingDialer) Dial(network, address string) (net.Conn, error) {
	c.mu.Lock()
	if c.last != nil {
		c.last.Close()
		c.last = nil
	}
	c.mu.Unlock()
	conn, err := c.d.Dial(network, address)
	if err == nil {
		c.mu.Lock()
		c.last = conn
		c.mu.Unlock()
	}
	return conn, err
}

// Dialer opens a host's TCP connection (nats.CustomDialer): on the
// machine's own network, or from a lab's host.
type Dialer interface {
	Dial(network, address string) (net.Conn, error)
}

// FleetConfig says how a Fleet's hosts connect.
type FleetConfig struct {
	// URLs are the servers the hosts connect to, host i to URLs[i %
	// len(URLs)]: a core server, or leaf nodes.
	URLs []string
	// Dialer, when set, opens their connections.
	Dialer Dialer
	// Concurrency is how many hosts connect at once; default 64.
	Concurrency int
	Logger      *slog.Logger
}

// A Fleet is many hosts connected to a project from one process, each as
// the client connects (client/daemon.ConnectOptions): it reconnects after
// a server restarts and says hello again each time, and the Fleet keeps
// when each was last served.
type Fleet struct {
	members []*member
}

type member struct {
	host   Host
	pacing daemon.Pacing
	nc     *nats.Conn
	mu     sync.Mutex
	hello  time.Time // when its last hello was answered
}

// Connect connects hosts and has each say hello once connected. It returns
// once every host has been answered, with the time that took, or with the
// first error.
func Connect(ctx context.Context, hosts []Host, cfg FleetConfig) (*Fleet, time.Duration, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{members: make([]*member, len(hosts))}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Concurrency)
	for range cfg.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(hosts) || ctx.Err() != nil {
					return
				}
				m, err := connectOne(ctx, hosts[i], cfg.URLs[i%len(cfg.URLs)], cfg)
				f.members[i] = m
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(<-errs, ctx.Err()); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("connect hosts: %w", err)
	}
	return f, time.Since(start), nil
}

func connectOne(ctx context.Context, h Host, url string, cfg FleetConfig) (*member, error) {
	m := &member{host: h}
	pub, _ := h.KP.PublicKey()
	var d Dialer = &net.Dialer{Timeout: dialTimeout}
	if cfg.Dialer != nil {
		d = cfg.Dialer
	}
	opts := append(daemon.ConnectOptions(h.ID, "bench", cfg.Logger, nil),
		nats.Nkey(pub, h.KP.Sign),
		// The client says hello again whenever it reconnects; here that is
		// how a restart's storm is measured.
		nats.ReconnectHandler(func(*nats.Conn) { go m.sayHello(ctx) }),
		nats.SetCustomDialer(&closingDialer{d: d}),
		// Reconnections spread as the project's hello says, as the
		// client's are.
		daemon.PacedReconnect(&m.pacing))
	// A server busy with thousands of connections may be late in the
	// handshake or the callout: the client tries again, so does the bench.
	var nc *nats.Conn
	var err error
	for try := 0; ; try++ {
		if nc, err = nats.Connect(url, opts...); err == nil {
			break
		}
		if try == connectTries-1 || ctx.Err() != nil {
			return m, fmt.Errorf("host %s: %d tries: %w", h.ID, try+1, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	m.nc = nc
	if err := m.sayHello(ctx); err != nil {
		return m, err
	}
	return m, nil
}

// sayHello sends the host's hello until it is answered or ctx ends.
func (m *member) sayHello(ctx context.Context) error {
	// As the client does, the hello names the server it goes through.
	req := wu.Encode(wu.Hello{V: wu.WireVersion, Host: wu.HostInfo{Name: m.host.ID, CPUs: 1}, Server: daemon.ServerName(m.nc)})
	for {
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		msg, err := m.nc.RequestWithContext(actx, wu.VolunteerSubject(m.host.ID, wu.OpHello), req)
		cancel()
		if err == nil {
			var rep wu.HelloReply
			if err = json.Unmarshal(msg.Data, &rep); err == nil && rep.Error != nil {
				err = rep.Error
			}
			if err == nil {
				m.pacing.Set(rep)
				m.mu.Lock()
				m.hello = time.Now()
				m.mu.Unlock()
				return nil
			}
			if code := wu.ErrorCode(err); code != wu.CodeUnavailable && code != wu.CodeRateLimited {
				return fmt.Errorf("host %s: hello: %w", m.host.ID, err)
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("host %s: hello: %w", m.host.ID, ctx.Err())
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Len is how many hosts the fleet holds.
func (f *Fleet) Len() int { return len(f.members) }

// ServedSince returns, for every host answered since t, how long after t
// its latest hello was answered, in increasing order, and how many hosts
// have not been answered since t.
func (f *Fleet) ServedSince(t time.Time) (served []time.Duration, waiting int) {
	for _, m := range f.members {
		m.mu.Lock()
		h := m.hello
		m.mu.Unlock()
		if h.After(t) {
			served = append(served, h.Sub(t))
		} else {
			waiting++
		}
	}
	slices.Sort(served)
	return served, waiting
}

// Close closes every host's connection.
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	for _, m := range f.members {
		if m != nil && m.nc != nil {
			wg.Go(m.nc.Close)
		}
	}
	wg.Wait()
}
