package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	wu "github.com/momonga-project/momonga/workunits"
)

// Subjects of the directory a leaf-node server's callout asks the core for
// (ServeDirectory, RemoteDirectory), in the project's account.
const (
	SubjectDirectoryHost = "adm.auth.host" // a host's public nkey → its HostCredential, or nothing
	SubjectDirectoryUser = "adm.auth.user" // an account key's hash → the user's id, or nothing
	// SubjectCutOff carries a Cutoff from the core to the leaf-node
	// servers, whose callouts close the host's connections there too.
	SubjectCutOff = "adm.auth.cutoff"
)

// Cutoff is a host cut off by the core: revoked (For 0: for good) or
// throttled for a while.
type Cutoff struct {
	Host string        `json:"host"`
	For  time.Duration `json:"for,omitempty"`
}

// Follow applies the cut-offs published on nc (a connection of the
// project's account reaching the core) to this callout, as a leaf-node
// server's does.
func (s *Service) Follow(nc *nats.Conn) error {
	if _, err := nc.Subscribe(SubjectCutOff, func(m *nats.Msg) {
		var c Cutoff
		if err := json.Unmarshal(m.Data, &c); err != nil || c.Host == "" {
			s.cfg.Logger.Warn("auth: malformed cut-off", "data", string(m.Data))
			return
		}
		if c.For > 0 {
			_ = s.Throttle(c.Host, c.For)
			return
		}
		s.Revoked([]string{c.Host})
	}); err != nil {
		return fmt.Errorf("auth: follow cut-offs: %w", err)
	}
	return nc.Flush()
}

// PublishCutoff tells the leaf-node servers' callouts to cut host off.
func PublishCutoff(nc *nats.Conn, c Cutoff) error {
	b, _ := json.Marshal(c)
	return nc.Publish(SubjectCutOff, b)
}

// directoryReply is what the directory answers: Found false for a key it
// does not know.
type directoryReply struct {
	Found bool              `json:"found"`
	Host  wu.HostCredential `json:"host"`
	User  string            `json:"user,omitempty"`
}

// ServeDirectory answers the directory's subjects on nc (a connection of
// the project's account) from dir, until the subscriptions are drained with
// nc. Every core server serves it, as a queue group. The questions are
// answered side by side, directoryInFlight at most: a leaf node's storm of
// handshakes asks thousands at once, and each answer may wait for the
// scheduler's member to finish applying a record.
func ServeDirectory(nc *nats.Conn, dir Directory) error {
	slots := make(chan struct{}, directoryInFlight)
	serve := func(find func(data []byte) directoryReply) nats.MsgHandler {
		return func(m *nats.Msg) {
			slots <- struct{}{}
			go func() {
				defer func() { <-slots }()
				b, _ := json.Marshal(find(m.Data))
				_ = m.Respond(b)
			}()
		}
	}
	if _, err := nc.QueueSubscribe(SubjectDirectoryHost, "auth-directory", serve(func(data []byte) directoryReply {
		hc, ok := dir.HostByNKey(string(data))
		return directoryReply{Found: ok, Host: hc}
	})); err != nil {
		return fmt.Errorf("auth directory: %w", err)
	}
	if _, err := nc.QueueSubscribe(SubjectDirectoryUser, "auth-directory", serve(func(data []byte) directoryReply {
		id, ok := dir.UserByKeyHash(wu.Hash(data))
		return directoryReply{Found: ok, User: id}
	})); err != nil {
		return fmt.Errorf("auth directory: %w", err)
	}
	return nc.Flush()
}

// A question that finds no responder is asked again, so many times at
// most, this far apart.
const (
	noResponderTries = 5
	noResponderPause = 50 * time.Millisecond
)

// directoryInFlight bounds the directory's questions answered at once.
const directoryInFlight = 64

// WaitForDirectory asks the core's directory about a key nobody holds
// until it answers, or until timeout: a leaf-node server lets volunteers
// in only once its callout can reach the core, as every handshake before
// that would be refused and tried again.
func WaitForDirectory(nc *nats.Conn, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m, err := nc.Request(SubjectDirectoryHost, []byte("-"), time.Second)
		if err == nil {
			var rep directoryReply
			if err = json.Unmarshal(m.Data, &rep); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("auth directory: the core did not answer within %v: %w", timeout, err)
		}
		if errors.Is(err, nats.ErrNoResponders) {
			// Not reached yet (the leaf node is still connecting):
			// a no-responders answer comes at once.
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// RemoteDirectory is the Directory of a leaf-node server's callout: it asks
// the core (ServeDirectory) over NC, a connection of the project's account
// that reaches the core through the leaf node. A question it cannot get
// answered counts as an unknown key: the host is refused, and its client
// tries again later.
type RemoteDirectory struct {
	NC      *nats.Conn
	Timeout time.Duration // per question; default two seconds
	Logger  *slog.Logger
}

func (d RemoteDirectory) ask(subject string, data []byte) (directoryReply, bool) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var rep directoryReply
	m, err := d.NC.Request(subject, data, timeout)
	for try := 1; errors.Is(err, nats.ErrNoResponders) && try < noResponderTries; try++ {
		// Through a leaf node the core's directory is now and then
		// not seen for a moment: ask again before refusing a host.
		time.Sleep(noResponderPause)
		m, err = d.NC.Request(subject, data, timeout)
	}
	if err == nil {
		err = json.Unmarshal(m.Data, &rep)
	}
	if err != nil {
		if d.Logger != nil {
			d.Logger.Warn("auth directory: the core did not answer", "subject", subject, "err", err)
		}
		return rep, false
	}
	return rep, rep.Found
}

// HostByNKey asks the core for the host whose public key is nkey.
func (d RemoteDirectory) HostByNKey(nkey string) (wu.HostCredential, bool) {
	rep, ok := d.ask(SubjectDirectoryHost, []byte(nkey))
	return rep.Host, ok
}

// UserByKeyHash asks the core for the user whose account key hashes to h.
func (d RemoteDirectory) UserByKeyHash(h wu.Hash) (string, bool) {
	rep, ok := d.ask(SubjectDirectoryUser, []byte(h))
	return rep.User, ok
}
