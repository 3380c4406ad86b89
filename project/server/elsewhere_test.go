package server

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestMembersElsewhere serves a project whose only member runs in another
// process (here another Server joining): the serving process becomes ready
// with no member, waits for the joined one, and then answers volunteers.
func TestMembersElsewhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Embedded(t.TempDir(), "127.0.0.1:0")
	cfg.Sched = sched.Config{Lease: time.Hour}
	cfg.Members, cfg.GroupSize = 0, 1 // the member runs in a process that joins
	cfg.Heartbeat, cfg.Lapse = testHeartbeat, testLapse
	cfg.Logger = vpeertest.TestLogger(t)
	cfg.Trust = Trust{Open: true, SigningKey: testKey.Public().(ed25519.PublicKey)}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if len(srv.Group().Members()) != 0 {
		t.Fatal("the serving process runs a member")
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	err = srv.WaitForMembers(short)
	cancelShort()
	if err == nil {
		t.Fatal("WaitForMembers returned before any member joined")
	}

	join := joining(t, srv.ClientURL())
	join.TickInterval = 50 * time.Millisecond
	member, err := Start(ctx, join)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	if err := srv.WaitForMembers(ctx); err != nil {
		t.Fatal(err)
	}
	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := adm.AddApp(ctx, "primes", apps.Primes, signed(apps.Primes), wu.Policy{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Submit(ctx, wu.Submit{Batch: "b", App: "primes", Replication: 1, Quorum: 1, Units: []wu.UnitSpec{{Args: []string{"0", "10"}}}}); err != nil {
		t.Fatal(err)
	}
	v := newVolunteer(t, srv.ClientURL(), 0, schedtest.NewHistory())
	if err := v.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := v.Work(ctx); err != nil || len(out.Tasks) != 1 {
		t.Fatalf("work from the joined member: %+v, %v", out, err)
	}
}
