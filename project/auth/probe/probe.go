// Package probe attacks a secured project's NATS with one host's
// credentials and reports what was not refused: the security tests run it
// against a server, a cluster and leaf-node servers alike, so that a host
// has the same permissions wherever it connects (project/auth).
package probe

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	wu "github.com/momonga-project/momonga/workunits"
)

// Errors collects a connection's asynchronous errors, where NATS reports
// permission violations: connect with nats.ErrorHandler(e.Handler).
type Errors struct {
	mu   sync.Mutex
	list []string
}

// Handler is a nats.ErrHandler.
func (e *Errors) Handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	e.mu.Lock()
	e.list = append(e.list, err.Error())
	e.mu.Unlock()
}

// Has reports whether an error containing substr was reported.
func (e *Errors) Has(substr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.list, func(s string) bool { return strings.Contains(s, substr) })
}

// Isolation tries, on nc, a connection of host own whose errors go to e,
// everything a host may not do to another host (other) or to the project:
// subscribe to their subjects and inboxes, publish to their services, into
// their inboxes, to the project's tools, JetStream and the system account.
// It waits up to timeout for the server to refuse each, and returns an
// error naming each attempt that was not refused, any message a forbidden
// subscription received, and a connection that the refusals closed.
func Isolation(nc *nats.Conn, e *Errors, own, other string, timeout time.Duration) error {
	var got sync.Map
	for _, subj := range []string{">", "_INBOX.>", wu.InboxPrefix(other) + ".>", "vol.>", "vol." + other + ".>", "adm.>", "$SYS.>", "$JS.API.>", "attach.>"} {
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) { got.Store(subj, m.Subject) }); err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	for _, subj := range []string{wu.VolunteerSubject(other, wu.OpHello), wu.VolunteerSubject(other, wu.OpBlobGet), wu.InboxPrefix(other) + ".x.y",
		wu.SubjectAdminStatus, wu.SubjectAdminCommand, "$JS.API.INFO", "$JS.API.STREAM.LIST", "$SYS.REQ.ACCOUNT.PING.CONNZ", "$SYS.REQ.SERVER.PING", "sched.log"} {
		if err := nc.PublishRequest(subj, wu.InboxPrefix(own)+".r", wu.Encode(wu.Hello{V: 1})); err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	want := []string{"Subscription to \">\"", "Subscription to \"_INBOX.>\"", "Subscription to \"" + wu.InboxPrefix(other) + ".>\"",
		"Subscription to \"$SYS.>\"", "Subscription to \"$JS.API.>\"",
		"Publish to \"vol." + other + ".hello\"", "Publish to \"" + wu.InboxPrefix(other) + ".x.y\"", "Publish to \"$JS.API.INFO\"",
		"Publish to \"$SYS.REQ.ACCOUNT.PING.CONNZ\"", "Publish to \"adm.status\""}
	deadline := time.Now().Add(timeout)
	var missing []string
	for {
		missing = missing[:0]
		for _, s := range want {
			if !e.Has(s) {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the errors reported, with a deadline
	}
	var errs []error
	for _, s := range missing {
		errs = append(errs, fmt.Errorf("not refused: %s", s))
	}
	got.Range(func(k, v any) bool {
		errs = append(errs, fmt.Errorf("the subscription to %v received a message on %v", k, v))
		return true
	})
	if !nc.IsConnected() {
		errs = append(errs, errors.New("permission violations closed the connection; they should only be refused"))
	}
	if _, err := nc.Request("$JS.API.INFO", nil, 300*time.Millisecond); err == nil {
		errs = append(errs, errors.New("the host reached the JetStream API"))
	}
	return errors.Join(errs...)
}
