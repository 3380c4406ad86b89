package reads

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestUserPageListsItsFirstHostsByCredit: a user with more hosts than a
// page lists gets the MaxHosts with the most credit, in that order, and
// the number of all of them.
func TestUserPageListsItsFirstHostsByCredit(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s := sched.New(sched.Config{Project: "p"})
	seq := uint64(0)
	apply := func(payload []byte) []byte {
		seq++
		return s.Apply(fsm.Entry{Seq: seq, Time: now, Payload: payload})
	}
	seq++
	s.Apply(fsm.Entry{Seq: seq, Tick: true, Time: now})
	var ack wu.Ack
	add := wu.UserAdd{V: 1, Name: "farm", Email: "farm@example.org", KeyHash: wu.AccountKeyHash("k")}
	if err := json.Unmarshal(apply(wu.Encode(wu.Command{V: 1, Op: wu.OpUserAdd, Host: "adm:test", Body: wu.Encode(add)})), &ack); err != nil || ack.Error != nil {
		t.Fatalf("user add: %v %v", err, ack.Error)
	}
	const n = stats.MaxHosts + 50
	a := accounting.New()
	d := accounting.Delivery{V: accounting.Version, Source: "sched"}
	for i := 1; i <= n; i++ {
		var key [34]byte
		binary.BigEndian.PutUint64(key[:], uint64(i))
		at := wu.Attach{V: 1, KeyHash: wu.AccountKeyHash("k"), NKey: "U" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key[:])[:55],
			Host: wu.HostInfo{Name: "box" + strconv.Itoa(i), OS: "linux", CPUs: 1}}
		var rep wu.AttachReply
		if err := json.Unmarshal(apply(wu.Encode(wu.Command{V: 1, Op: wu.OpAttach, Body: wu.Encode(at)})), &rep); err != nil || rep.Error != nil {
			t.Fatalf("attach %d: %v %v", i, err, rep.Error)
		}
		// Credit that neither rises nor falls with the hosts' age.
		credit := float64((i * 37) % n)
		d.Grants = append(d.Grants, accounting.Grant{ID: uint64(i), Task: "t", Host: rep.Host, User: "u1", Credit: credit + 1, Sent: now.Add(-time.Hour), At: now})
	}
	if rc := a.Receive(d); rc.Error != nil {
		t.Fatal(rc.Error)
	}
	src := Stats{Sched: servePeer(t, s), Acct: servePeer(t, a)}
	p, err := src.User(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.HostsTotal != n || len(p.Hosts) != stats.MaxHosts {
		t.Fatalf("%d hosts of %d listed, want %d of %d", len(p.Hosts), p.HostsTotal, stats.MaxHosts, n)
	}
	for i, h := range p.Hosts {
		if want := float64(n - i); h.Credit != want || h.Ref.Name != "box"+strconv.Itoa(int(h.Ref.ID)) {
			t.Fatalf("host %d listed: %+v, want credit %g", i, h, want)
		}
	}
}
