package workunits

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// Every member of the scheduler's virtual peer decodes every record of the
// log and encodes the reply to it, so the hot messages (the command
// envelope, the volunteers' work, beat and result requests and the replies
// to them) are read and written by hand here rather than through
// encoding/json's reflection, which was most of the cost of applying a
// record.
//
// The readers take only the plain form these messages have when momonga
// writes them: known field names in lower case, each once; strings of
// printable ASCII without escapes; integers without fraction or exponent;
// no null. On anything else they give up and encoding/json decodes the
// message, so a message decodes to the same value, or fails with the same
// error, either way (FuzzDecodeFast checks it). The writers write exactly
// the bytes json.Marshal writes (FuzzEncodeFast checks it): the replies are
// kept in the replicated state, whose hash every member must agree on, old
// members and new alike.

// decodeFast decodes b into v and checks it, if v is a hot message and b
// is in the plain form; it reports false when it leaves b to
// encoding/json, and v is then to be dropped.
func decodeFast(b []byte, v any) (ok bool, err error) {
	r := reader{b: b}
	switch v := v.(type) {
	case *Command:
		r.command(v)
	case *WorkRequest:
		r.workRequest(v)
	case *Beat:
		r.beat(v)
	case *Report:
		r.report(v)
	case *WorkReply:
		r.workReply(v)
	default:
		return false, nil
	}
	r.ws()
	if r.bad || r.i != len(b) {
		return false, nil
	}
	// Checked here, where the type is known, rather than through the
	// caller's type parameter, which would move the caller's value to the
	// heap.
	switch v := v.(type) {
	case *Command:
		err = v.Validate()
	case *WorkRequest:
		err = v.Validate()
	case *Beat:
		err = v.Validate()
	case *Report:
		err = v.Validate()
	}
	return true, err
}

// reader reads one JSON message in the plain form, until it gives up.
type reader struct {
	b   []byte
	i   int
	bad bool // given up: the message is left to encoding/json
}

// maxSkipDepth bounds the nesting of a value the reader skips over (a
// command's body); deeper ones are left to encoding/json.
const maxSkipDepth = 64

func (r *reader) fail() { r.bad = true }

func (r *reader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (r *reader) peek() byte {
	r.ws()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

func (r *reader) expect(c byte) {
	if r.bad || r.peek() != c {
		r.fail()
		return
	}
	r.i++
}

// more reports whether the object or array being read, which ends with
// end, has an n-th member (counting from 0), reading the comma before it or
// the end after the last one.
func (r *reader) more(end byte, n int) bool {
	if r.bad {
		return false
	}
	c := r.peek()
	if c == end {
		r.i++
		return false
	}
	if n > 0 {
		if c != ',' {
			r.fail()
			return false
		}
		r.i++
	}
	return true
}

// once fails when the field of the given bit was already read: with a field
// given twice, encoding/json merges or overwrites, and that is left to it.
func (r *reader) once(seen *uint32, bit uint32) {
	if *seen&bit != 0 {
		r.fail()
	}
	*seen |= bit
}

// plain reads a string of printable ASCII without escapes and returns its
// bytes, which share the message's memory.
func (r *reader) plain() []byte {
	if r.bad || r.peek() != '"' {
		r.fail()
		return nil
	}
	start := r.i + 1
	for i := start; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			r.i = i + 1
			return r.b[start:i]
		case c < 0x20 || c >= utf8.RuneSelf || c == '\\':
			r.fail()
			return nil
		}
	}
	r.fail()
	return nil
}

// key reads an object's key and the colon after it.
func (r *reader) key() []byte {
	k := r.plain()
	r.expect(':')
	return k
}

func (r *reader) str() string { return string(r.plain()) }

func (r *reader) boolean() bool {
	switch r.peek() {
	case 't':
		r.literal("true")
		return true
	case 'f':
		r.literal("false")
	default:
		r.fail()
	}
	return false
}

// text reads any string: by hand, unless it has \u escapes or bytes
// that are not UTF-8, which encoding/json reads its own way.
func (r *reader) text() string {
	if r.bad || r.peek() != '"' {
		r.fail()
		return ""
	}
	start := r.i
	r.skipString()
	if r.bad {
		return ""
	}
	raw := r.b[start+1 : r.i-1]
	plain, unicode, high := true, false, false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '\\':
			// skipString let through only whole escapes: the escaped
			// character follows, and is not read as one of its own.
			plain = false
			i++
			unicode = unicode || raw[i] == 'u'
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	if unicode || high && !utf8.Valid(raw) {
		var s string
		if err := json.Unmarshal(r.b[start:r.i], &s); err != nil {
			r.fail()
		}
		return s
	}
	if plain {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default: // ", \\ and /: skipString let no other through
			c = raw[i]
		}
		out = append(out, c)
	}
	return string(out)
}

// number reads a number literal; integral says it has neither fraction nor
// exponent.
func (r *reader) number() (lit []byte, integral bool) {
	if r.bad {
		return nil, false
	}
	r.ws()
	b, start := r.b, r.i
	i := start
	run := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		run()
	default:
		r.fail()
		return nil, false
	}
	integral = true
	if i < len(b) && b[i] == '.' {
		integral = false
		i++
		if !run() {
			r.fail()
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integral = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !run() {
			r.fail()
			return nil, false
		}
	}
	r.i = i
	return b[start:i], integral
}

// digits is the value of a run of at most 19 decimal digits.
func digits(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = 10*n + uint64(c-'0')
	}
	return n
}

// int64 reads an integer. Those of more than 18 digits, which might not
// fit, are left to encoding/json.
func (r *reader) int64() int64 {
	lit, integral := r.number()
	if !integral {
		r.fail()
		return 0
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	if len(lit) > 18 {
		r.fail()
		return 0
	}
	n := int64(digits(lit))
	if neg {
		n = -n
	}
	return n
}

func (r *reader) int() int {
	n := r.int64()
	if int64(int(n)) != n {
		r.fail()
	}
	return int(n)
}

func (r *reader) uint64() uint64 {
	lit, integral := r.number()
	if !integral || lit[0] == '-' || len(lit) > 19 {
		r.fail()
		return 0
	}
	return digits(lit)
}

func (r *reader) float64() float64 {
	lit, _ := r.number()
	if r.bad {
		return 0
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		r.fail()
	}
	return f
}

// skip reads over any value, checking it is well formed, and returns its
// bytes.
func (r *reader) skip(depth int) []byte {
	if r.bad {
		return nil
	}
	c := r.peek()
	start := r.i
	switch {
	case depth > maxSkipDepth:
		r.fail()
	case c == '{':
		r.i++
		for n := 0; r.more('}', n); n++ {
			r.skipString()
			r.expect(':')
			r.skip(depth + 1)
		}
	case c == '[':
		r.i++
		for n := 0; r.more(']', n); n++ {
			r.skip(depth + 1)
		}
	case c == '"':
		r.skipString()
	case c == '-' || c >= '0' && c <= '9':
		r.number()
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	default:
		r.fail()
	}
	if r.bad {
		return nil
	}
	return r.b[start:r.i]
}

func (r *reader) literal(s string) {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		r.fail()
		return
	}
	r.i += len(s)
}

// skipString reads over any well-formed string: escapes are checked, other
// bytes are taken as they are, as encoding/json takes them.
func (r *reader) skipString() {
	if r.bad || r.peek() != '"' {
		r.fail()
		return
	}
	b := r.b
	for i := r.i + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			r.i = i + 1
			return
		case c < 0x20:
			r.fail()
			return
		case c == '\\':
			i++
			if i >= len(b) {
				r.fail()
				return
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					r.fail()
					return
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						r.fail()
						return
					}
				}
				i += 4
			default:
				r.fail()
				return
			}
		}
	}
	r.fail()
}

// op reads a command's op, sharing the constant's memory when it is a
// known one.
func (r *reader) op() string {
	b := r.plain()
	for _, op := range [...]string{OpWork, OpBeat, OpResult, OpHello, OpCkpt} {
		if string(b) == op {
			return op
		}
	}
	return string(b)
}

func (r *reader) command(c *Command) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "v":
			r.once(&seen, 1)
			c.V = r.int()
		case "op":
			r.once(&seen, 2)
			c.Op = r.op()
		case "host":
			r.once(&seen, 4)
			c.Host = r.str()
		case "seq":
			r.once(&seen, 8)
			c.Seq = r.uint64()
		case "body":
			r.once(&seen, 16)
			if r.peek() == 'n' {
				r.fail()
			}
			// Copied, as encoding/json copies a RawMessage.
			c.Body = append([]byte(nil), r.skip(0)...)
		default:
			r.fail()
		}
	}
}

func (r *reader) workRequest(w *WorkRequest) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "v":
			r.once(&seen, 1)
			w.V = r.int()
		case "seq":
			r.once(&seen, 2)
			w.Seq = r.uint64()
		case "slots":
			r.once(&seen, 4)
			w.Slots = r.int()
		case "cache":
			r.once(&seen, 8)
			r.expect('[')
			w.Cache = []Hash{}
			for n := 0; r.more(']', n); n++ {
				w.Cache = append(w.Cache, Hash(r.str()))
			}
		case "held":
			r.once(&seen, 16)
			r.expect('[')
			w.Held = []string{}
			for n := 0; r.more(']', n); n++ {
				w.Held = append(w.Held, r.str())
			}
		case "held_all":
			r.once(&seen, 32)
			w.HeldAll = r.boolean()
		default:
			r.fail()
		}
	}
}

func (r *reader) beat(b *Beat) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "v":
			r.once(&seen, 1)
			b.V = r.int()
		case "seq":
			r.once(&seen, 2)
			b.Seq = r.uint64()
		case "tasks":
			r.once(&seen, 4)
			r.expect('[')
			b.Tasks = []TaskProgress{}
			for n := 0; r.more(']', n); n++ {
				b.Tasks = append(b.Tasks, TaskProgress{})
				r.taskProgress(&b.Tasks[len(b.Tasks)-1])
			}
		default:
			r.fail()
		}
	}
}

func (r *reader) taskProgress(p *TaskProgress) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "task":
			r.once(&seen, 1)
			p.Task = r.str()
		case "fraction":
			r.once(&seen, 2)
			p.Fraction = r.float64()
		case "cpu_seconds":
			r.once(&seen, 4)
			p.CPUSeconds = r.float64()
		default:
			r.fail()
		}
	}
}

func (r *reader) report(p *Report) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "v":
			r.once(&seen, 1)
			p.V = r.int()
		case "seq":
			r.once(&seen, 2)
			p.Seq = r.uint64()
		case "task":
			r.once(&seen, 4)
			p.Task = r.str()
		case "outcome":
			r.once(&seen, 8)
			switch o := r.plain(); string(o) {
			case string(OutcomeSuccess):
				p.Outcome = OutcomeSuccess
			case string(OutcomeFailure):
				p.Outcome = OutcomeFailure
			default:
				p.Outcome = Outcome(o)
			}
		case "output":
			r.once(&seen, 16)
			p.Output = Hash(r.str())
		case "output_size":
			r.once(&seen, 32)
			p.OutputSize = r.int64()
		case "exit_code":
			r.once(&seen, 64)
			p.ExitCode = r.int()
		case "reason":
			r.once(&seen, 128)
			p.Reason = r.str()
		case "cpu_seconds":
			r.once(&seen, 256)
			p.CPUSeconds = r.float64()
		default:
			r.fail()
		}
	}
}

func (r *reader) workReply(w *WorkReply) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "v":
			r.once(&seen, 1)
			w.V = r.int()
		case "assignments":
			r.once(&seen, 2)
			r.expect('[')
			w.Assignments = []Assignment{}
			for n := 0; r.more(']', n); n++ {
				w.Assignments = append(w.Assignments, Assignment{})
				r.assignment(&w.Assignments[len(w.Assignments)-1])
			}
		case "retry_seconds":
			r.once(&seen, 4)
			w.RetrySeconds = r.float64()
		default:
			// "error" among them: rare, left to encoding/json.
			r.fail()
		}
	}
}

func (r *reader) assignment(a *Assignment) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "task":
			r.once(&seen, 1)
			a.Task = r.str()
		case "work_unit":
			r.once(&seen, 2)
			a.WorkUnit = r.str()
		case "app":
			r.once(&seen, 4)
			a.App = r.str()
		case "app_hash":
			r.once(&seen, 8)
			a.AppHash = Hash(r.str())
		case "app_size":
			r.once(&seen, 16)
			a.AppSize = r.int64()
		case "app_sig":
			r.once(&seen, 32)
			a.AppSig = r.text()
		case "args":
			r.once(&seen, 64)
			r.expect('[')
			a.Args = []string{}
			for n := 0; r.more(']', n); n++ {
				a.Args = append(a.Args, r.text())
			}
		case "stdin":
			r.once(&seen, 128)
			a.Stdin = Hash(r.str())
		case "limits":
			r.once(&seen, 256)
			r.limits(&a.Limits)
		case "deadline":
			r.once(&seen, 512)
			// As time.Time's UnmarshalJSON reads it.
			if err := a.Deadline.UnmarshalText(r.plain()); err != nil {
				r.fail()
			}
		case "fpops":
			r.once(&seen, 1024)
			a.FPOps = r.float64()
		case "checkpoint":
			r.once(&seen, 2048)
			if r.peek() == 'n' {
				r.fail()
			}
			a.Checkpoint = &CheckpointRef{}
			r.checkpointRef(a.Checkpoint)
		case "checkpoint_seconds":
			r.once(&seen, 4096)
			a.CheckpointSeconds = r.float64()
		default:
			r.fail()
		}
	}
}

func (r *reader) limits(l *Limits) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "memory_bytes":
			r.once(&seen, 1)
			l.MemoryBytes = r.int64()
		case "output_bytes":
			r.once(&seen, 2)
			l.OutputBytes = r.int64()
		case "max_seconds":
			r.once(&seen, 4)
			l.MaxSeconds = r.float64()
		default:
			r.fail()
		}
	}
}

func (r *reader) checkpointRef(c *CheckpointRef) {
	r.expect('{')
	var seen uint32
	for n := 0; r.more('}', n); n++ {
		switch string(r.key()) {
		case "hash":
			r.once(&seen, 1)
			c.Hash = Hash(r.str())
		case "size":
			r.once(&seen, 2)
			c.Size = r.int64()
		case "seq":
			r.once(&seen, 4)
			c.Seq = r.uint64()
		case "base":
			r.once(&seen, 8)
			c.Base = Hash(r.str())
		case "base_size":
			r.once(&seen, 16)
			c.BaseSize = r.int64()
		case "progress":
			r.once(&seen, 32)
			c.Progress = r.float64()
		case "cpu_seconds":
			r.once(&seen, 64)
			c.CPUSeconds = r.float64()
		default:
			r.fail()
		}
	}
}

// encodeFast writes v if it is a hot reply; it reports false when it
// leaves v to encoding/json.
func encodeFast(v any) ([]byte, bool) {
	var w writer
	switch v := v.(type) {
	case *WorkReply:
		if v == nil {
			return nil, false
		}
		w.b = make([]byte, 0, replySize(v))
		w.workReply(v)
	case WorkReply:
		w.b = make([]byte, 0, replySize(&v))
		w.workReply(&v)
	case *Command:
		if v == nil {
			return nil, false
		}
		w.command(v)
	case Command:
		w.command(&v)
	case *Ack:
		if v == nil {
			return nil, false
		}
		w.ack(v)
	case Ack:
		w.ack(&v)
	case *BeatReply:
		if v == nil {
			return nil, false
		}
		w.beatReply(v)
	case BeatReply:
		w.beatReply(&v)
	default:
		return nil, false
	}
	return w.b, !w.bad
}

// replySize is about how long r is written: room enough, most often, for
// the writer not to grow its buffer.
func replySize(r *WorkReply) int {
	n := 64
	for i := range r.Assignments {
		a := &r.Assignments[i]
		n += 256 + len(a.Task) + len(a.WorkUnit) + len(a.App) + len(a.AppHash) + len(a.AppSig) + len(a.Stdin)
		for _, s := range a.Args {
			n += len(s) + 3
		}
		if a.Checkpoint != nil {
			n += 160 + len(a.Checkpoint.Hash) + len(a.Checkpoint.Base)
		}
	}
	return n
}

// command writes c, whose body is kept as it is: json.Marshal checks a
// RawMessage and writes it compacted and with <, >, & and U+2028/9
// escaped, so a body that has any of those, or is not JSON, is left to it.
func (w *writer) command(c *Command) {
	if len(c.Body) > 0 && !verbatim(c.Body) {
		w.bad = true
		return
	}
	w.b = make([]byte, 0, 48+len(c.Op)+len(c.Host)+len(c.Body))
	w.raw(`{"v":`)
	w.int(int64(c.V))
	w.raw(`,"op":`)
	w.str(c.Op)
	if c.Host != "" {
		w.raw(`,"host":`)
		w.str(c.Host)
	}
	if c.Seq != 0 {
		w.raw(`,"seq":`)
		w.uint(c.Seq)
	}
	if len(c.Body) > 0 {
		w.raw(`,"body":`)
		w.b = append(w.b, c.Body...)
	}
	w.b = append(w.b, '}')
}

// verbatim reports whether json.Marshal writes b, a RawMessage, as it is.
func verbatim(b []byte) bool {
	for i, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&':
			return false
		case 0xe2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9
			if i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xa8 || b[i+2] == 0xa9) {
				return false
			}
		}
	}
	return json.Valid(b)
}

// writer writes JSON as json.Marshal does, until it meets a value
// json.Marshal refuses (a NaN, an infinity, a time it cannot write).
type writer struct {
	b   []byte
	bad bool
}

func (w *writer) raw(s string) { w.b = append(w.b, s...) }

// comma writes a comma unless nothing was written since offset n, where
// an object's first field goes.
func (w *writer) comma(n int) {
	if len(w.b) > n {
		w.b = append(w.b, ',')
	}
}

func (w *writer) int(n int64) { w.b = strconv.AppendInt(w.b, n, 10) }

func (w *writer) uint(n uint64) { w.b = strconv.AppendUint(w.b, n, 10) }

// float writes f as encoding/json does: like strconv's shortest form, with
// an exponent only for very small or large numbers, and that exponent
// without a leading zero.
func (w *writer) float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		w.bad = true
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if format == 'e' {
		if n := len(w.b); n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
}

const hexDigits = "0123456789abcdef"

// plainByte tells the bytes a JSON string holds as they are: printable
// ASCII but for the quote, the backslash and HTML's <, > and &.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// str writes s quoted and escaped as encoding/json does, with HTML's
// special characters escaped too and invalid UTF-8 replaced.
func (w *writer) str(s string) {
	b := append(w.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plainByte[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	w.b = append(b, '"')
}

func (w *writer) strs(ss []string) {
	w.b = append(w.b, '[')
	for i, s := range ss {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.str(s)
	}
	w.b = append(w.b, ']')
}

func (w *writer) errorField(e *Error) {
	w.raw(`,"error":{"code":`)
	w.str(e.Code)
	w.raw(`,"message":`)
	w.str(e.Message)
	w.b = append(w.b, '}')
}

func (w *writer) ack(a *Ack) {
	w.raw(`{"v":`)
	w.int(int64(a.V))
	if a.Error != nil {
		w.errorField(a.Error)
	}
	w.b = append(w.b, '}')
}

func (w *writer) beatReply(r *BeatReply) {
	w.raw(`{"v":`)
	w.int(int64(r.V))
	if r.Error != nil {
		w.errorField(r.Error)
	}
	if len(r.Abort) > 0 {
		w.raw(`,"abort":`)
		w.strs(r.Abort)
	}
	w.b = append(w.b, '}')
}

func (w *writer) workReply(r *WorkReply) {
	w.raw(`{"v":`)
	w.int(int64(r.V))
	if r.Error != nil {
		w.errorField(r.Error)
	}
	if len(r.Assignments) > 0 {
		w.raw(`,"assignments":[`)
		for i := range r.Assignments {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.assignment(&r.Assignments[i])
		}
		w.b = append(w.b, ']')
	}
	if r.RetrySeconds != 0 {
		w.raw(`,"retry_seconds":`)
		w.float(r.RetrySeconds)
	}
	w.b = append(w.b, '}')
}

func (w *writer) assignment(a *Assignment) {
	w.raw(`{"task":`)
	w.str(a.Task)
	w.raw(`,"work_unit":`)
	w.str(a.WorkUnit)
	w.raw(`,"app":`)
	w.str(a.App)
	w.raw(`,"app_hash":`)
	w.str(string(a.AppHash))
	w.raw(`,"app_size":`)
	w.int(a.AppSize)
	if a.AppSig != "" {
		w.raw(`,"app_sig":`)
		w.str(a.AppSig)
	}
	if len(a.Args) > 0 {
		w.raw(`,"args":`)
		w.strs(a.Args)
	}
	if a.Stdin != "" {
		w.raw(`,"stdin":`)
		w.str(string(a.Stdin))
	}
	w.raw(`,"limits":{`)
	n := len(w.b)
	if a.Limits.MemoryBytes != 0 {
		w.raw(`"memory_bytes":`)
		w.int(a.Limits.MemoryBytes)
	}
	if a.Limits.OutputBytes != 0 {
		w.comma(n)
		w.raw(`"output_bytes":`)
		w.int(a.Limits.OutputBytes)
	}
	if a.Limits.MaxSeconds != 0 {
		w.comma(n)
		w.raw(`"max_seconds":`)
		w.float(a.Limits.MaxSeconds)
	}
	w.raw(`},"deadline":"`)
	// What time.Time's MarshalJSON writes, or its error.
	b, err := a.Deadline.AppendText(w.b)
	if err != nil {
		w.bad = true
		return
	}
	w.b = append(b, '"')
	if a.FPOps != 0 {
		w.raw(`,"fpops":`)
		w.float(a.FPOps)
	}
	if c := a.Checkpoint; c != nil {
		w.raw(`,"checkpoint":{"hash":`)
		w.str(string(c.Hash))
		w.raw(`,"size":`)
		w.int(c.Size)
		w.raw(`,"seq":`)
		w.uint(c.Seq)
		if c.Base != "" {
			w.raw(`,"base":`)
			w.str(string(c.Base))
		}
		if c.BaseSize != 0 {
			w.raw(`,"base_size":`)
			w.int(c.BaseSize)
		}
		if c.Progress != 0 {
			w.raw(`,"progress":`)
			w.float(c.Progress)
		}
		if c.CPUSeconds != 0 {
			w.raw(`,"cpu_seconds":`)
			w.float(c.CPUSeconds)
		}
		w.b = append(w.b, '}')
	}
	if a.CheckpointSeconds != 0 {
		w.raw(`,"checkpoint_seconds":`)
		w.float(a.CheckpointSeconds)
	}
	w.b = append(w.b, '}')
}
