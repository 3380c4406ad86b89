package daemon

import (
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestIdleClientHearsOfWorkAtOnce: a client that found no work waits out a
// back-off before it asks again; told by the project that work waits, it
// asks at once. Its clock stands still, so only the push can bring the
// work: the back-off never ends.
func TestIdleClientHearsOfWorkAtOnce(t *testing.T) {
	proj := startProject(t)
	clock := newTestClock()
	obs := &fakeObserver{lastInput: clock.Now().Add(-time.Hour)}
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: obs, Prefs: quickPrefs(), Control: "off", Now: clock.Now})
	wait.For(t, 30*time.Second, "the client to find no work and back off", func() bool {
		ps := d.Projects()
		return len(ps) == 1 && ps[0].Connected && ps[0].NextFetch.After(clock.Now())
	})
	submitted := time.Now()
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"block"})
	wait.For(t, 10*time.Second, "the task submitted to reach the client", func() bool { return len(d.Tasks()) == 1 })
	t.Logf("the client had the task %v after it was submitted", time.Since(submitted))
}
