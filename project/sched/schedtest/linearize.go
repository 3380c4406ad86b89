package schedtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	wu "github.com/momonga-project/momonga/workunits"
)

// Op is an operation of the history checked for linearizability: a work
// request, or the result of Task.
type Op struct {
	Host string
	Op   string // wu.OpWork or wu.OpResult
	Task string // of a result
}

// Out is what a volunteer was answered.
type Out struct {
	Tasks []string // assigned by a work request
	Err   string   // the reply's error code
}

// History records operations as volunteers see them: from the first
// attempt of a request to the reply that answered it.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// NewHistory starts an empty history.
func NewHistory() *History { return &History{start: time.Now()} }

func (h *History) now() int64 { return int64(time.Since(h.start)) }

func (h *History) add(client int, in Op, call int64, out Out) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: h.now()})
}

// Operations returns the operations recorded so far.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Model is the scheduler's work and result operations done one at a time,
// for single-replica units and leases that never run out: work hands out
// the oldest unsent task (tasks, in the scheduler's order), a result is
// accepted once, from the task's holder. The state is a string with one
// byte per task: '.' unsent, the holder's letter while assigned, upper case
// once reported. Hosts are named as Volunteer names them.
func Model(tasks []string) porcupine.Model {
	index := make(map[string]int, len(tasks))
	for i, t := range tasks {
		index[t] = i
	}
	letter := func(host string) byte {
		var n int
		fmt.Sscanf(host, "v%d", &n)
		return byte('a' + n)
	}
	return porcupine.Model{
		Init: func() any { return strings.Repeat(".", len(tasks)) },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(string), input.(Op), output.(Out)
			switch in.Op {
			case wu.OpWork:
				next := strings.IndexByte(st, '.')
				if next < 0 {
					return len(out.Tasks) == 0 && out.Err == "", st
				}
				if out.Err != "" || len(out.Tasks) != 1 || out.Tasks[0] != tasks[next] {
					return false, st
				}
				b := []byte(st)
				b[next] = letter(in.Host)
				return true, string(b)
			case wu.OpResult:
				i, ok := index[in.Task]
				if ok && st[i] == letter(in.Host) {
					if out.Err != "" {
						return false, st
					}
					b := []byte(st)
					b[i] -= 'a' - 'A'
					return true, string(b)
				}
				return out.Err == wu.CodeNotAssigned, st
			}
			return false, st
		},
		DescribeOperation: func(input, output any) string {
			return fmt.Sprintf("%+v → %+v", input, output)
		},
	}
}

// Check checks a history against Model and logs the verdict.
func Check(t testing.TB, tasks []string, ops []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(Model(tasks), ops, 20*time.Second)
	t.Logf("porcupine: %d operations, %s in %v", len(ops), res, time.Since(start).Round(time.Millisecond))
	return res
}

// Requester sends a volunteer's request on subject and returns the reply,
// or an error when none came within ctx.
type Requester func(ctx context.Context, subject string, data []byte) ([]byte, error)

// Volunteer is a simulated volunteer host speaking the real protocol:
// hello, then numbered work and result requests, each sent again with its
// number until answered, recorded in a History.
type Volunteer struct {
	ID      int
	Host    string
	Request Requester
	Hist    *History
	Output  []byte // what it reports for every task: a blob the project holds
	seq     uint64
}

// NewVolunteer makes volunteer number id (host "vNN").
func NewVolunteer(id int, request Requester, hist *History, output []byte) *Volunteer {
	return &Volunteer{ID: id, Host: fmt.Sprintf("v%02d", id), Request: request, Hist: hist, Output: output}
}

// request sends data for op until a reply comes or ctx ends, and decodes
// the reply into out.
func (v *Volunteer) request(ctx context.Context, op string, data []byte, out any) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		reply, err := v.Request(actx, wu.VolunteerSubject(v.Host, op), data)
		cancel()
		var ack wu.Ack
		if err == nil && json.Unmarshal(reply, &ack) == nil && ack.Error != nil && ack.Error.Code == wu.CodeUnavailable {
			// Not recorded, or not known to be: sent again, as it is, a
			// little later.
			err = ack.Error
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err == nil {
			return json.Unmarshal(reply, out)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: no answer: %w", v.Host, op, err)
		}
	}
}

// Hello registers the host and learns its next sequence number.
func (v *Volunteer) Hello(ctx context.Context) error {
	var r wu.HelloReply
	if err := v.request(ctx, wu.OpHello, wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: v.Host, CPUs: 1}}), &r); err != nil {
		return err
	}
	if r.Error != nil {
		return r.Error
	}
	v.seq = r.NextSeq
	return nil
}

func errCode(e *wu.Error) string {
	if e == nil {
		return ""
	}
	return e.Code
}

// Work asks for one task.
func (v *Volunteer) Work(ctx context.Context) (Out, error) {
	seq := v.seq
	v.seq++
	call := v.Hist.now()
	var r wu.WorkReply
	if err := v.request(ctx, wu.OpWork, wu.Encode(wu.WorkRequest{V: 1, Seq: seq, Slots: 1}), &r); err != nil {
		return Out{}, err
	}
	out := Out{Err: errCode(r.Error)}
	for _, a := range r.Assignments {
		out.Tasks = append(out.Tasks, a.Task)
	}
	v.Hist.add(v.ID, Op{Host: v.Host, Op: wu.OpWork}, call, out)
	return out, nil
}

// Result reports task done, with Output.
func (v *Volunteer) Result(ctx context.Context, task string) (Out, error) {
	seq := v.seq
	v.seq++
	call := v.Hist.now()
	var r wu.Ack
	rep := wu.Report{V: 1, Seq: seq, Task: task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(v.Output), OutputSize: int64(len(v.Output)), CPUSeconds: 1}
	if err := v.request(ctx, wu.OpResult, wu.Encode(rep), &r); err != nil {
		return Out{}, err
	}
	out := Out{Err: errCode(r.Error)}
	v.Hist.add(v.ID, Op{Host: v.Host, Op: wu.OpResult, Task: task}, call, out)
	return out, nil
}
