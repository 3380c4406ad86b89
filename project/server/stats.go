package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/reads"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// The stats site's part of the server (DESIGN §9): its pages and API read
// this process's members (project/reads), /metrics reads them and the
// gateway, and the statistics exports are written into Config.StatsDir on
// a schedule and on demand (`momonga-project export`, adm.export).

func (s *Server) statsSource() reads.Stats {
	return reads.Stats{Sched: s.group, Acct: s.acct, Project: s.cfg.Sched.Project}
}

// statsConfig is what the stats site serves.
func (s *Server) statsConfig() stats.Config {
	return stats.Config{
		Source: s.statsSource(),
		Output: func(ctx context.Context, hash string) ([]byte, error) {
			h := wu.Hash(hash)
			if !h.Valid() {
				return nil, stats.ErrNotFound
			}
			return s.store.Get(ctx, h)
		},
		Exports: s.cfg.StatsDir,
		Measure: s.measure,
		Logger:  s.cfg.Logger.With("part", "stats"),
	}
}

// measure reads the metrics.
func (s *Server) measure(ctx context.Context) (stats.Measures, error) {
	var (
		m      stats.Measures
		census sched.Census
	)
	err := s.group.Query(ctx, func(mb *vpeer.Member) { census = mb.Machine().(*sched.Machine).Census() })
	if err != nil {
		return m, err
	}
	m.Assigned, m.Reported = census.Assigned, census.Reported
	m.Tasks = map[string]int{}
	for st, n := range census.Tasks {
		m.Tasks[string(st)] = n
	}
	err = s.acct.Query(ctx, func(mb *vpeer.Member) {
		m.ActiveHosts = mb.Machine().(*accounting.Machine).Active(accounting.Hosts, census.Now, stats.ActiveDays)
	})
	if err != nil {
		return m, err
	}
	for _, g := range []*vpeer.Group{s.group, s.acct} {
		st := g.Status(ctx)
		gm := stats.GroupMeasure{Name: st.Group, LogLast: st.LogLast, Lease: st.Lease}
		for _, mm := range st.Members {
			gm.Members = append(gm.Members, stats.MemberMeasure{ID: mm.ID, Applied: mm.Applied, Serving: mm.Ready})
		}
		m.Groups = append(m.Groups, gm)
	}
	if s.gw != nil {
		m.Refused, m.Floods = s.gw.Refusals()
	}
	if n, err := s.store.Bytes(ctx); err == nil {
		m.BlobBytes = n
	}
	return m, nil
}

// exportLoop writes the exports into StatsDir every ExportEvery, the
// first once the scheduler has time.
func (s *Server) exportLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		sum, err := stats.ExportDir(ctx, s.statsSource(), s.cfg.StatsDir)
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("statistics export", "dir", s.cfg.StatsDir, "err", err)
				t.Reset(time.Minute)
			}
			continue
		}
		s.cfg.Logger.Info("statistics exported", "dir", s.cfg.StatsDir, "users", sum.Users, "teams", sum.Teams, "hosts", sum.Hosts, "took", time.Since(start))
		t.Reset(s.cfg.ExportEvery)
	}
}

// serveExports answers adm.export: an export written into the blob store.
func (s *Server) serveExports(ctx context.Context) error {
	_, err := s.nc.QueueSubscribe(wu.SubjectAdminExport, "export", func(msg *nats.Msg) {
		s.wg.Go(func() {
			rep := wu.ExportReply{V: wu.WireVersion}
			files, err := s.exportBlobs(ctx)
			if err != nil {
				rep.Error = wu.Errorf(wu.CodeInternal, "export: %v", err)
			}
			rep.Files = files
			_ = msg.Respond(wu.Encode(rep))
		})
	})
	return err
}

func (s *Server) exportBlobs(ctx context.Context) ([]wu.ExportFile, error) {
	var files []wu.ExportFile
	var errs []error
	_, err := stats.Export(ctx, s.statsSource(), func(name string) (io.WriteCloser, error) {
		return &blobFile{put: func(b []byte) {
			h, err := s.store.Put(ctx, b)
			errs = append(errs, err)
			files = append(files, wu.ExportFile{Name: name, Hash: h, Size: int64(len(b))})
		}}, nil
	})
	return files, errors.Join(append(errs, err)...)
}

// blobFile collects a file in memory and stores it as a blob when closed.
type blobFile struct {
	bytes.Buffer
	put func([]byte)
}

func (f *blobFile) Close() error {
	f.put(f.Bytes())
	return nil
}
