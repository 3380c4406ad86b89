package impact

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
	wu "github.com/momonga-project/momonga/workunits"
)

// measureUnattached is the client as a package starts it at boot: nothing
// attached. It is measured idle like an attached one, then attached to the
// local project, which has work waiting, through its control API as
// `momonga attach` does; how long until a task runs is the answer.
func measureUnattached(ctx context.Context, cfg Config, res *Result, exe, tmp string, proj *projectProcess, env []string) error {
	data := filepath.Join(tmp, "unattached")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	p := prefs.Defaults()
	p.RunIfUserActive, p.SuspendCPUPercent = true, 0 // what is measured is the client, not the person
	if err := prefs.Save(data, p); err != nil {
		return err
	}
	child, err := startProcess(exe, env, "run", "--data", data)
	if err != nil {
		return err
	}
	defer child.stop()
	var cl *control.Client
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := child.exited(); err != nil {
			return err
		}
		if cl, err = control.Dial(data); err == nil {
			// Up once its first benchmarks are done.
			if h, err := cl.Host(ctx); err == nil && !h.Benchmarks.At.IsZero() {
				break
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the client with nothing attached did not start within 2 minutes")
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if err := sleep(ctx, settle); err != nil {
		return err
	}
	cpu0, at0 := processCPU(child.pid()), time.Now()
	if err := sleep(ctx, cfg.Idle); err != nil {
		return err
	}
	cpu1, at1 := processCPU(child.pid()), time.Now()
	res.UnattachedRSSBytes, _ = host.ResidentBytes(child.pid())
	res.UnattachedSeconds = at1.Sub(at0).Seconds()
	res.UnattachedCPUPercent = 100 * (cpu1 - cpu0).Seconds() / res.UnattachedSeconds

	// A task long enough to be seen running, short enough to finish here
	// before the next measurement, which must not find it.
	lo := uint64(2e12)
	sub := wu.Submit{Batch: "unattached", App: "primes", Replication: 1, Quorum: 1, Limits: wu.Limits{MemoryBytes: 64 << 20},
		Units: []wu.UnitSpec{{Args: []string{strconv.FormatUint(lo, 10), strconv.FormatUint(lo+uint64(2e8), 10)}}}}
	if err := proj.submit(ctx, tmp, sub); err != nil {
		return err
	}
	attached := time.Now()
	if err := cl.Attach(ctx, proj.url, 0); err != nil {
		return err
	}
	if _, err := waitRunning(ctx, cl, 1); err != nil {
		return err
	}
	res.AttachToRunSeconds = time.Since(attached).Seconds()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if ts, err := cl.Tasks(ctx); err == nil && len(ts) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the task given after the attach was not done within 2 minutes")
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}
