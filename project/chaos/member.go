package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/momonga-project/momonga/project/server"
)

// memberEvent is a line a member process writes on its standard output.
type memberEvent struct {
	Event    string `json:"event"` // "joined", "ready", "lease" (taken or lost: Leading says) or "displaced"
	Process  string `json:"process,omitempty"`
	Member   string `json:"member,omitempty"`
	Slot     int    `json:"slot"`
	Restored uint64 `json:"restored,omitempty"` // the snapshot it started from; 0: the whole log replayed
	Applied  uint64 `json:"applied,omitempty"`
	Leading  bool   `json:"leading,omitempty"`
}

// errDisplaced ends a member process whose member stopped, its slot taken
// by another process that thought it dead: it leaves, so that a run keeps
// one member per process.
var errDisplaced = errors.New("chaos member: the member stopped (its slot was taken over)")

// memberArgs are the arguments MemberMain takes, as a run passes them.
func memberArgs(url string, cfg Config) []string {
	// One word each, so that no command line parser takes a value for an
	// argument.
	return []string{
		"--nats-url=" + url,
		"--heartbeat=" + cfg.Heartbeat.String(),
		"--lapse=" + cfg.Lapse.String(),
		"--tick=" + cfg.Tick.String(),
		fmt.Sprintf("--snapshot-every=%d", cfg.SnapshotEvery),
	}
}

// MemberMain is one member process of a chaos run (`momonga-project vpeer
// chaos-member`): it joins the virtual peer of the project at --nats-url
// with room for one member, as `serve --join --members 1` does, and
// reports on out, one JSON object a line, when it joined and when its
// member is ready. It returns when in reaches its end (the run that started
// it closed the pipe, or died) or ctx ends, and with errDisplaced when its
// member stopped. The run kills it with SIGKILL: a crash, not an exit.
func MemberMain(ctx context.Context, args []string, in io.Reader, out io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("chaos-member", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("nats-url", "", "NATS URL of the project")
	heartbeat := fs.Duration("heartbeat", time.Second, "how often slots are renewed")
	lapse := fs.Duration("lapse", 3*time.Second, "how long an unrenewed slot stays taken")
	tick := fs.Duration("tick", time.Second, "how often the lease holder appends a tick")
	every := fs.Uint64("snapshot-every", 10_000, "log records between snapshots")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("chaos member: %w", err)
	}
	if *url == "" || fs.NArg() > 0 {
		return errors.New("chaos member: usage: --nats-url URL [--heartbeat D] [--lapse D] [--tick D] [--snapshot-every N]")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, in)
		cancel()
	}()
	cfg := server.Joining(*url)
	cfg.Heartbeat, cfg.Lapse, cfg.TickInterval, cfg.SnapshotEvery, cfg.Logger = *heartbeat, *lapse, *tick, *every, logger
	// Snapshots at every --snapshot-every records whatever the state's
	// size, so that replacements restore and replay as often as the run
	// says (and as its audit replays them).
	cfg.SnapshotSpacing = -1
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	enc := json.NewEncoder(out)
	g := srv.Group()
	if err := enc.Encode(memberEvent{Event: "joined", Process: g.Process()}); err != nil {
		return err
	}
	select {
	case <-g.Ready():
	case <-ctx.Done():
		return nil
	case <-srv.Done():
		return srv.Close()
	}
	st := g.Status(ctx)
	ev := memberEvent{Event: "ready", Process: g.Process()}
	if len(st.Members) > 0 {
		m := st.Members[0]
		ev.Member, ev.Slot, ev.Applied = m.ID, m.Slot, m.Applied
		if m.Restored != nil {
			ev.Restored = m.Restored.Seq
		}
	}
	if err := enc.Encode(ev); err != nil {
		return err
	}
	t := time.NewTicker(*heartbeat / 4)
	defer t.Stop()
	leading := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-srv.Done():
			return srv.Close()
		case <-t.C:
		}
		ms := g.Members()
		if len(ms) == 0 {
			_ = enc.Encode(memberEvent{Event: "displaced", Process: g.Process()})
			return errDisplaced
		}
		if l := ms[0].Status().Leading; l != leading {
			leading = l
			if err := enc.Encode(memberEvent{Event: "lease", Process: g.Process(), Member: ms[0].ID(), Leading: l}); err != nil {
				return err
			}
		}
	}
}
