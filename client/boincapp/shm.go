package boincapp

import (
	"bytes"
	"fmt"
	"strings"
)

// The shared memory between the client and the app (lib/app_ipc.h): eight
// channels of 1024 bytes. A channel's first byte is non-zero while it
// holds a message the receiver has not read; the sender writes only into
// an empty channel (or overwrites), the receiver clears the byte once it
// has read the message, a NUL-terminated string after it.
const (
	channelSize = 1024
	shmSize     = 8 * channelSize
)

// Channels, in the order of SHARED_MEM.
const (
	chanProcessControlRequest = iota // client → app: <quit/> <suspend/> <resume/> <abort/>
	chanProcessControlReply
	chanGraphicsRequest
	chanGraphicsReply
	chanHeartbeat // client → app: <heartbeat/> every second
	chanAppStatus // app → client: CPU time, checkpoint CPU time, fraction done
	chanTrickleUp
	chanTrickleDown
)

// Shm is the shared memory of a task's slot.
type Shm struct {
	mem   []byte
	close func() error
}

// NewShm wraps a region of at least 8 KiB as the shared memory: a test's
// stand-in for the client's.
func NewShm(mem []byte) (*Shm, error) {
	if len(mem) < shmSize {
		return nil, fmt.Errorf("shared memory of %d bytes, want %d", len(mem), shmSize)
	}
	return &Shm{mem: mem[:shmSize], close: func() error { return nil }}, nil
}

// Attach opens the shared memory the client made for the task in dir.
func Attach(dir string, d InitData) (*Shm, error) {
	mem, closeFn, err := attach(dir, d)
	if err != nil {
		return nil, fmt.Errorf("attach to the BOINC client's shared memory: %w", err)
	}
	return &Shm{mem: mem, close: closeFn}, nil
}

// Close releases the shared memory.
func (s *Shm) Close() error { return s.close() }

func (s *Shm) channel(i int) []byte { return s.mem[i*channelSize : (i+1)*channelSize] }

// receive takes the message waiting in channel i, if any.
func (s *Shm) receive(i int) (string, bool) {
	c := s.channel(i)
	if c[0] == 0 {
		return "", false
	}
	msg := c[1:]
	if n := bytes.IndexByte(msg, 0); n >= 0 {
		msg = msg[:n]
	}
	m := string(msg)
	c[0] = 0
	return m, true
}

// send puts msg into channel i unless the last message is still unread.
func (s *Shm) send(i int, msg string) bool {
	if s.channel(i)[0] != 0 {
		return false
	}
	s.overwrite(i, msg)
	return true
}

// overwrite puts msg into channel i, read or not.
func (s *Shm) overwrite(i int, msg string) {
	c := s.channel(i)
	n := copy(c[1:channelSize-1], msg)
	c[1+n] = 0
	c[0] = 1
}

// Control is what the client asked in one process-control message.
type Control struct {
	Suspend, Resume, Quit, Abort bool
}

// Control reads the client's process-control request, if one waits.
func (s *Shm) Control() (Control, bool) {
	m, ok := s.receive(chanProcessControlRequest)
	if !ok {
		return Control{}, false
	}
	return Control{
		Suspend: strings.Contains(m, "<suspend/>"),
		Resume:  strings.Contains(m, "<resume/>"),
		Quit:    strings.Contains(m, "<quit/>"),
		Abort:   strings.Contains(m, "<abort/>"),
	}, true
}

// Heartbeat reports whether the client sent a heartbeat since the last
// call.
func (s *Shm) Heartbeat() bool {
	m, ok := s.receive(chanHeartbeat)
	return ok && strings.Contains(m, "<heartbeat/>")
}

// Status is what the app tells the client every second.
type Status struct {
	CPUSeconds           float64 // of the task, earlier episodes included
	CheckpointCPUSeconds float64 // CPUSeconds when the newest checkpoint was made
	// Fraction done in [0, 1]; negative when the app does not know.
	Fraction float64
}

// SendStatus tells the client how far the task is, unless it has not read
// the last status yet (BOINC's update_app_progress).
func (s *Shm) SendStatus(st Status, d InitData) bool {
	return s.send(chanAppStatus, statusMessage(st, d))
}

// SendFinalStatus tells the client the task's last status, replacing one it
// has not read: the client reads it when the app has exited.
func (s *Shm) SendFinalStatus(st Status, d InitData) {
	s.overwrite(chanAppStatus, statusMessage(st, d))
}

func statusMessage(st Status, d InitData) string {
	msg := fmt.Sprintf("<current_cpu_time>%e</current_cpu_time>\n<checkpoint_cpu_time>%e</checkpoint_cpu_time>\n",
		st.CPUSeconds, st.CheckpointCPUSeconds)
	if st.Fraction >= 0 {
		f := d.FractionStart + min(st.Fraction, 1)*(d.FractionEnd-d.FractionStart)
		msg += fmt.Sprintf("<fraction_done>%e</fraction_done>\n", f)
	}
	return msg
}

// ClientSide is the client's end of the shared memory, for tests that
// stand in for a BOINC client.
type ClientSide struct{ s *Shm }

// Client returns the client's end of s.
func (s *Shm) Client() ClientSide { return ClientSide{s} }

// Send sends a process-control message (<suspend/>, <resume/>, <quit/>,
// <abort/>); false while the app has not read the last one.
func (c ClientSide) Send(msg string) bool { return c.s.send(chanProcessControlRequest, msg) }

// Heartbeat sends a heartbeat.
func (c ClientSide) Heartbeat() { c.s.send(chanHeartbeat, "<heartbeat/>") }

// Status takes the app's newest status message, if one waits.
func (c ClientSide) Status() (string, bool) { return c.s.receive(chanAppStatus) }
