package boincapp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

const argWorker = "boincapp-test-worker"

// clientDir is the BOINC client directory the tests make their slots in.
// Its slots share the project directory, and the runner's compilation cache
// in it, as a client's slots do: each module is compiled once.
var (
	clientDir   string
	clientSlots atomic.Int32
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == argWorker {
		os.Exit(runner.WorkerMainForTests(os.Stdin, os.Stdout))
	}
	dir, err := os.MkdirTemp("", "momonga-boincapp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	clientDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// slot is a BOINC slot directory as a client lays it out: init_data.xml,
// the shared memory file, and soft links to the files in the project
// directory. The test plays the client through its end of the memory.
type slot struct {
	t       *testing.T
	dir     string
	project string
	out     string // the task's output file, in the project directory
	client  ClientSide
	stderr  *syncBuffer
	task    wu.BOINCTask
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newSlot makes the next slot of the client directory for task.
func newSlot(t *testing.T, module []byte, task wu.BOINCTask) *slot {
	n := int(clientSlots.Add(1))
	moduleFile, out := fmt.Sprintf("module_%d.wasm", n), fmt.Sprintf("task_%d_out", n)
	s := &slot{t: t, dir: filepath.Join(clientDir, "slots", strconv.Itoa(n)), project: filepath.Join(clientDir, "projects", "p"), out: out, stderr: &syncBuffer{}, task: task}
	for _, d := range []string{s.dir, s.project} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, p := range []string{s.dir, filepath.Join(s.project, moduleFile), filepath.Join(s.project, out)} {
			os.RemoveAll(p)
		}
	})
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(s.project, moduleFile), module)
	write(filepath.Join(s.dir, wu.BOINCModuleFile), []byte("<soft_link>../../projects/p/"+moduleFile+"</soft_link>\n"))
	write(filepath.Join(s.dir, wu.BOINCOutputFile), []byte("<soft_link>../../projects/p/"+out+"</soft_link>\n"))
	write(filepath.Join(s.dir, InitDataFile), []byte(`<app_init_data>
<major_version>7</major_version>
<app_name>`+task.App+`</app_name>
<project_dir>`+s.project+`</project_dir>
<shm_key>-1</shm_key>
<wu_cpu_time>0.000000</wu_cpu_time>
<checkpoint_period>1.000000</checkpoint_period>
<fraction_done_start>0.000000</fraction_done_start>
<fraction_done_end>1.000000</fraction_done_end>
<host_info><p_ncpus>2</p_ncpus></host_info>
</app_init_data>
`))
	write(filepath.Join(s.dir, MmapFile), make([]byte, shmSize))
	f, err := os.OpenFile(filepath.Join(s.dir, MmapFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, shmSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	shm, _ := NewShm(mem)
	s.client = shm.Client()
	return s
}

// start runs the app in the slot, sending heartbeats as a client does,
// until it exits. A test that ends first stops the app, and the heartbeats,
// before the slot's shared memory is unmapped.
func (s *slot) start(ctx context.Context) <-chan int {
	exe, _ := os.Executable()
	app := App{
		Dir: s.dir, Args: []string{"--other", s.task.BOINCCommandLine()}, Worker: runner.Worker{Command: []string{exe, argWorker}},
		Stderr: s.stderr, Tick: 20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(ctx)
	code, done := make(chan int, 1), make(chan struct{})
	var beating sync.WaitGroup
	beats, stop := time.NewTicker(20*time.Millisecond), make(chan struct{})
	beating.Go(func() {
		for {
			select {
			case <-beats.C:
				s.client.Heartbeat()
			case <-stop:
				return
			}
		}
	})
	go func() {
		defer close(done)
		c := app.Run(ctx)
		beats.Stop()
		close(stop)
		beating.Wait()
		code <- c
	}()
	s.t.Cleanup(func() {
		cancel()
		<-done
	})
	return code
}

func (s *slot) output() string {
	b, _ := os.ReadFile(filepath.Join(s.project, s.out))
	return string(b)
}

func (s *slot) finished() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, FinishCalledFile))
	return string(b)
}

func exitOf(t *testing.T, code <-chan int) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(2 * time.Minute):
		t.Fatal("the app did not exit")
		return -1
	}
}

func TestAppRunsATaskAndFinishes(t *testing.T) {
	s := newSlot(t, apps.Primes, wu.BOINCTask{V: 1, Task: "wu1_0", WorkUnit: "wu1", App: "primes", AppHash: wu.HashOf(apps.Primes), Args: []string{"0", "1000"}})
	code := exitOf(t, s.start(context.Background()))
	if code != 0 || s.finished() != "0\n" || s.output() != "168\n" {
		t.Fatalf("exit %d, finish file %q, output %q, stderr %s", code, s.finished(), s.output(), s.stderr)
	}
	st, ok := s.client.Status()
	if !ok || !strings.Contains(st, "<fraction_done>1.000000e+00</fraction_done>") || !strings.Contains(st, "<current_cpu_time>") {
		t.Fatalf("last status %q", st)
	}
}

func TestAppFailureIsFinishedWithItsReason(t *testing.T) {
	s := newSlot(t, apps.Primes, wu.BOINCTask{V: 1, Task: "wu1_0", WorkUnit: "wu1", App: "primes", AppHash: wu.HashOf(apps.Primes), Args: []string{"x"}})
	code := exitOf(t, s.start(context.Background()))
	if code == 0 || !strings.HasPrefix(s.finished(), "1\n") || !strings.Contains(s.stderr.String(), "usage: primes") {
		t.Fatalf("exit %d, finish file %q, stderr %s", code, s.finished(), s.stderr)
	}
}

// The client suspends, resumes and then quits the task (as before it
// exits); started again, the app resumes from its checkpoint and the result
// is the one an uninterrupted run gives.
func TestAppSuspendResumeQuitAndRestartFromCheckpoint(t *testing.T) {
	// The project publishes a reactor with its globals exported (`app add`).
	module, err := wu.PrepareModule(apps.MandelC)
	if err != nil {
		t.Fatal(err)
	}
	// The C reactor: a small module, cheap to compile and to snapshot under
	// the race detector. Its points in the set iterate a million times: the
	// tile takes about two seconds of CPU under wazero, ten times the
	// checkpoint interval, and a task cannot take less wall time than CPU
	// time. It checkpoints before it can end, and goes on long after that
	// for the client's messages to reach it, on a fast machine as on a busy
	// one.
	args := []string{"-0.743643887037151", "0.13182590420533", "0.00001", "64", "200", "1000000"}
	task := wu.BOINCTask{V: 1, Task: "wu2_0", WorkUnit: "wu2", App: "mandelc", AppHash: wu.HashOf(module), Args: args, CheckpointSeconds: 0.2}
	// A checkpoint costs CPU, under the race detector much more, and the
	// interval is wall time: on a busy machine, one every 0.2 s would leave
	// the task little CPU. Only the run that is
	// interrupted checkpoints that often; the uninterrupted one and the one
	// that finishes the task take one at most every minute.
	rare := task
	rare.CheckpointSeconds = 60
	ref := newSlot(t, module, rare)
	if code := exitOf(t, ref.start(context.Background())); code != 0 {
		t.Fatalf("uninterrupted run: exit %d, %s", code, ref.stderr)
	}

	s := newSlot(t, module, task)
	code := s.start(context.Background())
	ckpt := filepath.Join(s.dir, "momonga", "checkpoints", checkpointState)
	wait.For(t, time.Minute, "a checkpoint in the slot", func() bool { _, err := os.Stat(ckpt); return err == nil })
	for _, msg := range []string{"<suspend/>", "<resume/>", "<quit/>"} {
		wait.For(t, 10*time.Second, "the app to read "+msg, func() bool { return s.client.Send(msg) })
	}
	if c := exitOf(t, code); c != 0 || s.finished() != "" {
		t.Fatalf("quit: exit %d, finish file %q, stderr %s", c, s.finished(), s.stderr)
	}
	s.task = rare
	if c := exitOf(t, s.start(context.Background())); c != 0 || s.finished() != "0\n" {
		t.Fatalf("restart: exit %d, finish file %q, stderr %s", c, s.finished(), s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "resumed from checkpoint") {
		t.Fatalf("the restarted app did not resume: %s", s.stderr)
	}
	if s.output() != ref.output() || len(ref.output()) < 1000 {
		t.Fatalf("the resumed run's output (%d bytes) differs from the uninterrupted one's (%d bytes)", len(s.output()), len(ref.output()))
	}
}
