package auth

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/internal/natstest"
	wu "github.com/momonga-project/momonga/workunits"
)

// slowDirectory answers after release is closed, and counts the questions
// it holds at once.
type slowDirectory struct {
	release chan struct{}
	now     atomic.Int32
	most    atomic.Int32
}

func (d *slowDirectory) HostByNKey(nkey string) (wu.HostCredential, bool) {
	n := d.now.Add(1)
	for m := d.most.Load(); n > m && !d.most.CompareAndSwap(m, n); m = d.most.Load() {
	}
	<-d.release
	d.now.Add(-1)
	return wu.HostCredential{ID: "h-" + nkey}, true
}

func (d *slowDirectory) UserByKeyHash(wu.Hash) (string, bool) { return "", false }

// TestDirectoryAnswersSideBySide: questions that each wait on the
// scheduler are answered together, not one after another.
func TestDirectoryAnswersSideBySide(t *testing.T) {
	_, nc := natstest.Start(t)
	dir := &slowDirectory{release: make(chan struct{})}
	if err := ServeDirectory(nc, dir); err != nil {
		t.Fatal(err)
	}
	asker, err := nats.Connect(nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer asker.Close()
	remote := RemoteDirectory{NC: asker, Timeout: 10 * time.Second}
	const questions = 20
	var wg sync.WaitGroup
	found := make([]string, questions)
	for i := range questions {
		wg.Go(func() {
			if hc, ok := remote.HostByNKey(string(rune('a' + i))); ok {
				found[i] = hc.ID
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for dir.most.Load() < questions && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := dir.most.Load(); got < questions {
		t.Fatalf("%d questions held at once, want all %d", got, questions)
	}
	close(dir.release)
	wg.Wait()
	for i, h := range found {
		if want := "h-" + string(rune('a'+i)); h != want {
			t.Fatalf("question %d answered %q, want %q", i, h, want)
		}
	}
}

// TestWaitForDirectory: a leaf waits for the core's directory, and gives up
// after its time-out when none answers.
func TestWaitForDirectory(t *testing.T) {
	_, nc := natstest.Start(t)
	start := time.Now()
	if err := WaitForDirectory(nc, 300*time.Millisecond); err == nil {
		t.Fatal("no directory, and the wait ended without an error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("gave up after %v", took)
	}
	dir := &slowDirectory{release: make(chan struct{})}
	close(dir.release)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = ServeDirectory(nc, dir)
	}()
	if err := WaitForDirectory(nc, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteDirectoryAsksAgainWhenNoneAnswers: a question that finds no
// responder for a moment (through a leaf node, now and then) is asked
// again, and the host is not refused for it.
func TestRemoteDirectoryAsksAgainWhenNoneAnswers(t *testing.T) {
	_, nc := natstest.Start(t)
	dir := &slowDirectory{release: make(chan struct{})}
	close(dir.release)
	go func() {
		time.Sleep(noResponderPause + noResponderPause/2)
		_ = ServeDirectory(nc, dir)
	}()
	hc, ok := RemoteDirectory{NC: nc, Timeout: 5 * time.Second}.HostByNKey("k")
	if !ok || hc.ID != "h-k" {
		t.Fatalf("got %+v %v: the question was not asked again once the directory answered", hc, ok)
	}
	// With nobody ever answering, the host is refused after the tries.
	_, nc2 := natstest.Start(t)
	start := time.Now()
	if _, ok := (RemoteDirectory{NC: nc2}).HostByNKey("k"); ok {
		t.Fatal("found a host with no directory")
	}
	if took := time.Since(start); took < (noResponderTries-1)*noResponderPause {
		t.Fatalf("refused after %v: it did not ask again", took)
	}
}
