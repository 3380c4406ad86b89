package hostbench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profiler fetches a server's profiles through its profile port (`serve
// --profile-port`) into a directory; the zero profiler does nothing.
type profiler struct {
	dir, name string
	port      int
}

func newProfiler(dir, name string) (profiler, error) {
	if dir == "" {
		return profiler{}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return profiler{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return profiler{}, err
	}
	_, p, _ := strings.Cut(addr, ":")
	port, err := strconv.Atoi(p)
	return profiler{dir: dir, name: name, port: port}, err
}

// args are the server's flags that open its profile port.
func (p profiler) args() []string {
	if p.dir == "" {
		return nil
	}
	return []string{"--profile-port", strconv.Itoa(p.port)}
}

// connected saves the heap (heap.pb.gz; heap.txt with the runtime's
// memory statistics) and the goroutines of a server holding every
// host, and returns how many goroutines it runs.
func (p profiler) connected() (int, error) {
	if p.dir == "" {
		return 0, nil
	}
	if err := p.fetch("heap?gc=1", "heap.pb.gz"); err != nil {
		return 0, err
	}
	// The text form ends with runtime.MemStats: the stacks, the heap in
	// use and idle, what the process took from the system.
	if err := p.fetch("heap?debug=1", "heap.txt"); err != nil {
		return 0, err
	}
	if err := p.fetch("goroutine?debug=1", "goroutines.txt"); err != nil {
		return 0, err
	}
	return goroutineCount(filepath.Join(p.dir, p.name+"-goroutines.txt"))
}

// storm saves the goroutines of a server in the middle of a storm.
func (p profiler) storm() error {
	if p.dir == "" {
		return nil
	}
	return p.fetch("goroutine?debug=1", "storm-goroutines.txt")
}

// stormCPU saves a CPU profile of the storm's first 30 s.
func (p profiler) stormCPU() error {
	if p.dir == "" {
		return nil
	}
	return p.fetch("profile?seconds=30", "storm-cpu.pb.gz")
}

func (p profiler) fetch(what, file string) error {
	c := http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s", p.port, what))
	if err != nil {
		return fmt.Errorf("the server's profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the server's profile %s: %s", what, resp.Status)
	}
	f, err := os.Create(filepath.Join(p.dir, p.name+"-"+file))
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// goroutineCount reads the total from a goroutine profile in text form
// ("goroutine profile: total N").
func goroutineCount(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "goroutine profile: total "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("%s: not a goroutine profile", path)
}
