package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	wu "github.com/momonga-project/momonga/workunits"
)

// conn is the host's line to one project: requests on vol.H.*, each
// numbered so that a retry is never applied twice.
type conn struct {
	nc   *nats.Conn
	host string

	mu  sync.Mutex // one numbered request at a time: the scheduler sees them in order
	seq uint64

	attemptTimeout time.Duration
	pacing         *Pacing // set by each hello reply
}

// How often the host pings its server, and how many pings may go
// unanswered before it takes the connection for dead and moves to another.
const (
	pingInterval = 4 * time.Second
	maxPingsOut  = 2
)

// ConnectOptions are the options of host's connection to a project, named
// after the client name: how it reconnects, pings, logs and receives
// replies. Load tests of the project side connect their hosts with them
// too (project/hostbench), so that they behave as the client does.
// reconnected, if not nil, is called after the log line each time the
// connection is made again (NATS keeps one reconnect handler: another
// option would replace this one's).
func ConnectOptions(host, name string, logger *slog.Logger, reconnected func()) []nats.Option {
	// Which server the host talks to, when it changes: the tests of a
	// network's faults read it too.
	connected := func(nc *nats.Conn) { logger.Info("connected to the project", "server", nc.ConnectedUrlRedacted()) }
	reconnect := func(nc *nats.Conn) {
		connected(nc)
		if reconnected != nil {
			reconnected()
		}
	}
	return []nats.Option{
		nats.Name("momonga " + name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(func(attempts int) time.Duration { return reconnectDelay(attempts, rand.Float64) }),
		// A server cut off by the network sends nothing, not even a reset:
		// with NATS's default pings (every two minutes, two unanswered) the
		// host would sit on the dead connection for up to four minutes
		// before trying another server; with these, 8 to 12 seconds. A
		// ping waits behind a blob chunk being sent (512 KiB: 4 s on a
		// 1 Mbit/s uplink), so not less.
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			logger.Info("disconnected from the project", "server", nc.ConnectedUrlRedacted(), "err", err)
		}),
		nats.ConnectHandler(connected),
		nats.ReconnectHandler(reconnect),
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrAuthorization) {
				logger.Warn("the project refused this host's credentials (revoked, or throttled for a while); retrying", "err", err)
				return
			}
			logger.Warn("connection to the project", "err", err)
		}),
		// Replies come to an inbox under the host's own prefix, the only
		// one a locked-down volunteer account may subscribe to.
		nats.CustomInboxPrefix(wu.InboxPrefix(host)),
		// A server busy authorising the hosts of a storm answers late, but
		// answers: the handshake may take as long as the server waits for
		// its callout. Opening the connection stays bounded by NATS's
		// default, so that a server that does not answer at all is left
		// for the next soon.
		nats.Timeout(wu.ConnectTimeout),
		nats.Dialer(&net.Dialer{Timeout: nats.DefaultTimeout}),
	}
}

// reconnectDelay is how long a host waits before its next reconnection
// attempt: soon after a server restart, then less and less often, as a
// host the project throttles is refused for a minute and keeps trying
// rather than giving up on its first refusal. Each wait is drawn between
// half and all of its step (rnd in [0, 1)): the hosts of a restarted
// server, all disconnected at the same instant, would otherwise come back
// in the same bursts, each attempt, through the auth callout.
func reconnectDelay(attempts int, rnd func() float64) time.Duration {
	step := min(250*time.Millisecond<<min(attempts, 8), 30*time.Second)
	return step/2 + time.Duration(rnd()*float64(step/2))
}

// Pacing is the spread over which a host draws its reconnection attempts,
// as the project's hello reply last gave it (wu.HelloReply
// ReconnectSpreadSeconds); the zero Pacing spreads nothing.
type Pacing struct{ spread atomic.Int64 }

// Set records the spread of a hello reply.
func (p *Pacing) Set(rep wu.HelloReply) {
	p.spread.Store(int64(rep.ReconnectSpreadSeconds * float64(time.Second)))
}

// PacedReconnect is the option that draws each reconnection attempt's
// wait as reconnectDelay does, or at random within p's spread when that is
// longer: 10^4 hosts of a restarted server then come back over the spread
// their project gave, at the rate it admits them, not in the bursts of the
// backoff's steps, each of which the server's lock took minutes to clear.
func PacedReconnect(p *Pacing) nats.Option {
	return nats.CustomReconnectDelay(func(attempts int) time.Duration {
		return pacedDelay(attempts, time.Duration(p.spread.Load()), rand.Float64)
	})
}

func pacedDelay(attempts int, spread time.Duration, rnd func() float64) time.Duration {
	d := reconnectDelay(attempts, rnd)
	if spread > 0 {
		d = max(d, time.Duration(rnd()*float64(spread)))
	}
	return d
}

func dial(url, host, name string, logger *slog.Logger, reconnected func(), extra ...nats.Option) (*conn, error) {
	pacing := &Pacing{}
	opts := append(append(ConnectOptions(host, name, logger, reconnected), PacedReconnect(pacing)), extra...)
	// A refusal of the host's credentials is final: say so at once. A
	// project that cannot be reached yet is waited for.
	nc, err := nats.Connect(url, opts...)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("the project at %s refused this host (%w): its credentials are unknown, revoked or throttled; attach it with `momonga attach %s --account-key KEY`", url, err, url)
	}
	if err != nil {
		nc, err = nats.Connect(url, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to project %s: %w", url, err)
	}
	return &conn{nc: nc, host: host, attemptTimeout: 10 * time.Second, pacing: pacing}, nil
}

func (c *conn) close() { c.nc.Close() }

// hello registers the host and sets the sequence numbers to continue from.
func (c *conn) hello(ctx context.Context, info wu.HostInfo) (wu.HelloReply, error) {
	var rep wu.HelloReply
	err := c.request(ctx, wu.OpHello, wu.Encode(wu.Hello{V: wu.WireVersion, Host: info, Server: ServerName(c.nc)}), &rep, -1)
	if err != nil {
		return rep, err
	}
	c.mu.Lock()
	c.seq = rep.NextSeq - 1
	c.mu.Unlock()
	if c.pacing != nil {
		c.pacing.Set(rep)
	}
	return rep, nil
}

// ServerName is the name of the NATS server nc is connected to, as a hello
// names it (wu.Hello.Server): "" when not connected, or when the name is
// not one a hello may carry.
func ServerName(nc *nats.Conn) string {
	if n := nc.ConnectedServerName(); wu.ValidName(n) {
		return n
	}
	return ""
}

// numbered sends a request that carries the next sequence number, built by
// body, retrying with the same number until it is answered, ctx ends or
// tries run out (tries < 0: until ctx ends).
func (c *conn) numbered(ctx context.Context, op string, body func(seq uint64) any, out any, tries int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.request(ctx, op, wu.Encode(body(c.seq)), out, tries)
}

func (c *conn) request(ctx context.Context, op string, data []byte, out any, tries int) error {
	subject := wu.VolunteerSubject(c.host, op)
	backoff := 250 * time.Millisecond
	var last error
	for attempt := 0; tries < 0 || attempt < tries; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
		msg, err := c.nc.RequestWithContext(actx, subject, data)
		cancel()
		if err == nil {
			err = decodeReply(msg.Data, out)
			if !retryLater(err) {
				return err
			}
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) || retryLater(err) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
	return fmt.Errorf("%s: no answer from the project: %w", op, last)
}

// retryLater reports whether the project answered err to a request it
// wants sent again later, unchanged: over the host's rate, or not recorded
// (it may have been: the same sequence number makes it count once).
func retryLater(err error) bool {
	code := wu.ErrorCode(err)
	return err != nil && (code == wu.CodeRateLimited || code == wu.CodeUnavailable)
}

func decodeReply(data []byte, out any) error {
	var ack wu.Ack
	if err := json.Unmarshal(data, &ack); err != nil {
		return fmt.Errorf("malformed reply from project: %w", err)
	}
	if ack.Error != nil {
		return ack.Error
	}
	if err := wu.DecodeReply(data, out); err != nil {
		return fmt.Errorf("malformed reply from project: %w", err)
	}
	return nil
}

// download fetches a whole blob chunk by chunk and checks its hash.
func (c *conn) download(ctx context.Context, h wu.Hash, maxBytes int64) ([]byte, error) {
	var buf []byte
	for {
		msg := nats.NewMsg(wu.VolunteerSubject(c.host, wu.OpBlobGet))
		msg.Header.Set(wu.HeaderHash, string(h))
		msg.Header.Set(wu.HeaderOffset, strconv.Itoa(len(buf)))
		reply, err := c.blobRequest(ctx, msg)
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", h.Short(), err)
		}
		size, err := strconv.ParseInt(reply.Header.Get(wu.HeaderSize), 10, 64)
		if err != nil || size < 0 || size > maxBytes {
			return nil, fmt.Errorf("download %s: blob size %q out of range", h.Short(), reply.Header.Get(wu.HeaderSize))
		}
		if buf == nil {
			buf = make([]byte, 0, size)
		}
		buf = append(buf, reply.Data...)
		if int64(len(buf)) >= size || len(reply.Data) == 0 {
			break
		}
	}
	if got := wu.HashOf(buf); got != h {
		return nil, fmt.Errorf("download %s: content hashes to %s", h.Short(), got.Short())
	}
	return buf, nil
}

// upload sends a blob chunk by chunk, resuming where the project says it is.
func (c *conn) upload(ctx context.Context, b []byte) (wu.Hash, error) {
	const chunk = 512 << 10
	h := wu.HashOf(b)
	size := int64(len(b))
	offset := int64(0)
	for stalls := 0; stalls < 10; {
		end := min(offset+chunk, size)
		msg := nats.NewMsg(wu.VolunteerSubject(c.host, wu.OpBlobPut))
		msg.Header.Set(wu.HeaderHash, string(h))
		msg.Header.Set(wu.HeaderSize, strconv.FormatInt(size, 10))
		msg.Header.Set(wu.HeaderOffset, strconv.FormatInt(offset, 10))
		msg.Data = b[offset:end]
		reply, err := c.blobRequest(ctx, msg)
		if err != nil {
			return h, fmt.Errorf("upload %s: %w", h.Short(), err)
		}
		done, err := strconv.ParseInt(reply.Header.Get(wu.HeaderDone), 10, 64)
		if err != nil || done < 0 || done > size {
			return h, fmt.Errorf("upload %s: malformed reply", h.Short())
		}
		if done == size {
			return h, nil
		}
		if done != end {
			stalls++
		}
		offset = done
	}
	return h, fmt.Errorf("upload %s: the project keeps losing the upload", h.Short())
}

func (c *conn) blobRequest(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	var last error
	limited := 0
	for attempt := 0; attempt < 5; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
		reply, err := c.nc.RequestMsgWithContext(actx, msg)
		cancel()
		wait := time.Duration(attempt+1) * 250 * time.Millisecond
		if err == nil {
			e := wu.ParseHeaderError(reply.Header.Get(wu.HeaderError))
			if e == nil {
				return reply, nil
			}
			if e.Code != wu.CodeRateLimited {
				return nil, e
			}
			// Over the host's request rate, as many tasks starting at
			// once can be: wait, and do not count it as a failure.
			err = e
			attempt--
			limited++
			wait = min(250*time.Millisecond<<min(limited, 5), 5*time.Second)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil, last
}
