package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// stalled is a log whose appends wait until released, as a log busy with
// the hellos of a reconnection storm.
type stalled struct {
	*schedtest.Peer
	release chan struct{}
	waiting chan struct{}
}

func (l *stalled) Append(ctx context.Context, rec vpeer.Record) (uint64, error) {
	l.waiting <- struct{}{}
	select {
	case <-l.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return l.Peer.Append(ctx, rec)
}

// TestToolsAreNotQueuedBehindVolunteers: with every slot of the
// volunteers' requests held by hellos whose appends wait, the project's
// tools are still answered at once, in slots of their own.
func TestToolsAreNotQueuedBehindVolunteers(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{DontListen: true, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	const inFlight = 4
	peer := schedtest.Start(t, schedtest.Config{Members: 1, Reply: func(subject string, data []byte) error { return nc.Publish(subject, data) }})
	log := &stalled{Peer: peer, release: make(chan struct{}), waiting: make(chan struct{}, 2*inFlight)}
	// Not batched: each hello is an append of its own and holds its slot.
	gw := New(Config{Log: log, Reads: peerReads{peer}, Publish: nc, InFlight: inFlight, Batch: Batching{Max: 1, InFlight: 2 * inFlight}})
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); close(log.release); gw.Wait() }()
	if err := gw.Subscribe(ctx, nc); err != nil {
		t.Fatal(err)
	}

	hello := wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "h", CPUs: 1}})
	for i := range 2 * inFlight {
		if err := nc.PublishRequest(wu.VolunteerSubject(fmt.Sprintf("h%d", i), wu.OpHello), nc.NewRespInbox(), hello); err != nil {
			t.Fatal(err)
		}
	}
	// Every volunteers' slot is taken: inFlight appends wait.
	for range inFlight {
		select {
		case <-log.waiting:
		case <-time.After(10 * time.Second):
			t.Fatal("the hellos did not reach the log")
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	msg, err := nc.RequestWithContext(rctx, wu.SubjectAdminStatus, nil)
	if err != nil {
		t.Fatalf("the tools' status while the volunteers' requests fill their slots: %v", err)
	}
	var st wu.StatusReply
	if err := json.Unmarshal(msg.Data, &st); err != nil || st.Error != nil {
		t.Fatalf("status reply %s: %v %v", msg.Data, err, st.Error)
	}
}
