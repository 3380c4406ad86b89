package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// unanswered is a log that does not answer the first appends, as a
// cluster's log while it elects a leader.
type unanswered struct {
	*schedtest.Peer
	fail atomic.Int32
}

func (l *unanswered) Append(ctx context.Context, rec vpeer.Record) (uint64, error) {
	if l.fail.Add(-1) >= 0 {
		return 0, errors.New("no response from stream")
	}
	return l.Peer.Append(ctx, rec)
}

// TestUnrecordedRequestIsToBeSentAgain: a request the log did not take is
// answered CodeUnavailable, which tells the host to send it again,
// unchanged (a request recorded all the same is answered by the members,
// whose reply comes first); sent again, it is served.
func TestUnrecordedRequestIsToBeSentAgain(t *testing.T) {
	var log *unanswered
	r := newRig(t, rigConfig{log: func(p *schedtest.Peer, _ *router) Log { log = &unanswered{Peer: p}; return log }})
	hello := wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "h", CPUs: 1}})
	log.fail.Store(1)
	if a := r.ack("vol.h1.hello", hello); a.Error == nil || a.Error.Code != wu.CodeUnavailable {
		t.Fatalf("a request the log did not take: %+v; want %s", a.Error, wu.CodeUnavailable)
	}
	if a := r.ack("vol.h1.hello", hello); a.Error != nil {
		t.Fatalf("the same request sent again: %v", a.Error)
	}
	if st := (peerReads{r.peer}).Status(); len(st.Hosts) != 1 || st.Hosts[0].ID != "h1" {
		t.Fatalf("hosts after the request went through: %+v", st.Hosts)
	}
}
