package stats

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/sched"
	wu "github.com/momonga-project/momonga/workunits"
)

// slicedSource hands out n records of each kind, and fails from its
// failAt-th read on (0: never), or calls cancel at its cancelAt-th.
type slicedSource struct {
	n, failAt, cancelAt int
	cancel              func()
	reads               atomic.Int64
}

var errSource = errors.New("peer gone")

func (s *slicedSource) Records(_ context.Context, k Kind, from, to uint64, out []Record) ([]Record, bool, error) {
	n := s.reads.Add(1)
	if s.failAt > 0 && n >= int64(s.failAt) {
		return out, false, errSource
	}
	if n == int64(s.cancelAt) {
		s.cancel()
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for num := from; num < to && num <= uint64(s.n); num++ {
		i := int(num)
		out = append(out, Record{
			Record: sched.Record{Num: num, Name: fmt.Sprintf("%s-%d<&>", k, i), Created: t0, CPID: fmt.Sprintf("%032x", i), UserNum: uint64(1 + i%3),
				TeamNum: uint64(i % 2), NoExport: i%17 == 0, Info: wu.HostInfo{OS: "linux", CPUModel: strings.Repeat("x", i%50), FLOPS: float64(i) * 1e6}},
			// Some without credit (not exported), the rest with
			// credits whose sum depends on the order they are added in.
			Credit: float64(i%5) * (1 + 1/float64(i)), RAC: float64(i) / 3, RACTime: t0.Add(time.Duration(i) * time.Second),
		})
	}
	return out, to <= uint64(s.n), nil
}

func (s *slicedSource) ExportApps(context.Context) ([]string, error) { return []string{"app"}, nil }
func (s *slicedSource) Time(context.Context) (time.Time, error)      { return now, nil }

func exportTo(t *testing.T, src ExportSource, slice uint64) (ExportSummary, map[string][]byte, error) {
	t.Helper()
	files := map[string]*bytes.Buffer{}
	sum, err := export(context.Background(), src, func(name string) (io.WriteCloser, error) {
		files[name] = &bytes.Buffer{}
		return nopCloser{files[name]}, nil
	}, slice)
	out := map[string][]byte{}
	for name, b := range files {
		raw := b.Bytes()
		if strings.HasSuffix(name, ".gz") && err == nil {
			// The reader checks the stream's checksum and length.
			zr, zerr := gzip.NewReader(bytes.NewReader(raw))
			if zerr == nil {
				raw, zerr = io.ReadAll(zr)
			}
			if zerr != nil {
				t.Fatalf("%s: %v", name, zerr)
			}
		}
		out[name] = raw
	}
	return sum, out, err
}

// TestExportSlicesMakeOneFile: records read in many small slices, written
// and compressed by several workers, make the same files and totals (the
// credit summed in the same order) as records read in one slice.
func TestExportSlicesMakeOneFile(t *testing.T) {
	one, whole, err := exportTo(t, &slicedSource{n: 3000}, 5000)
	if err != nil {
		t.Fatal(err)
	}
	for _, slice := range []uint64{1, 7, 1000, 3000} {
		sum, files, err := exportTo(t, &slicedSource{n: 3000}, slice)
		if err != nil {
			t.Fatal(err)
		}
		if sum != one {
			t.Errorf("slices of %d: summary %+v, in one slice %+v", slice, sum, one)
		}
		for name, want := range whole {
			if !bytes.Equal(files[name], want) {
				t.Errorf("slices of %d: %s differs from the one written from one slice", slice, name)
			}
		}
	}
	if one.Users != 2400 || !strings.Contains(string(whole["user.gz"]), "<name>users-2999&lt;&amp;&gt;</name>") {
		t.Errorf("summary %+v, user.gz ends %q", one, whole["user.gz"][len(whole["user.gz"])-300:])
	}
}

// TestExportStopsOnErrors: a source failing in the middle of a file, a
// file that cannot be written, or the caller giving up ends the export
// with the error, and no worker is left behind.
func TestExportStopsOnErrors(t *testing.T) {
	before := runtime.NumGoroutine()
	_, _, err := exportTo(t, &slicedSource{n: 3000, failAt: 50}, 10)
	if !errors.Is(err, errSource) || !strings.Contains(err.Error(), "user.gz") {
		t.Errorf("source failing: %v", err)
	}
	_, err = export(context.Background(), &slicedSource{n: 3000}, func(name string) (io.WriteCloser, error) {
		return &failingFile{after: 3000}, nil
	}, 10)
	if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "user.gz") {
		t.Errorf("file failing: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = export(ctx, &slicedSource{n: 3000, cancelAt: 50, cancel: cancel}, func(name string) (io.WriteCloser, error) {
		return nopCloser{io.Discard}, nil
	}, 10)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("export given up: %v", err)
	}
	wait.For(t, 5*time.Second, "the export's workers to end", func() bool { return runtime.NumGoroutine() <= before })
}

var errDiskFull = errors.New("no space left on device")

// failingFile takes after bytes, then fails.
type failingFile struct{ after int }

func (f *failingFile) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errDiskFull
	}
	return len(p), nil
}

func (f *failingFile) Close() error { return nil }

// BenchmarkExport writes the files of 20,000 records of each kind.
func BenchmarkExport(b *testing.B) {
	src := &slicedSource{n: 20000}
	var n int64
	for b.Loop() {
		n = 0
		_, err := Export(context.Background(), src, func(string) (io.WriteCloser, error) { return countingFile{&n}, nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "bytes/export")
}

type countingFile struct{ n *int64 }

func (f countingFile) Write(p []byte) (int, error) { *f.n += int64(len(p)); return len(p), nil }
func (countingFile) Close() error                  { return nil }
