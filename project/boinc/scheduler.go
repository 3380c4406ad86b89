package boinc

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"

	wu "github.com/momonga-project/momonga/workunits"
)

// The scheduler RPC. Each BOINC request becomes the requests a momonga
// volunteer makes, in the same order: attach (the first time a host
// appears), hello (its description, and where its sequence numbers go on),
// a result per reported task, a beat for the tasks it still holds, and a
// work request when it asks for work. Sequence numbers follow hello's
// NextSeq, so a request the scheduler sees twice is applied once.

// Delays the client is asked to wait before its next request.
const (
	delayBadRequest = 3600 // a request it sent that cannot be read, or an unknown key
	delayRetry      = 60   // the project could not answer now
)

const (
	schedulerVersion = 720 // the BOINC server version whose replies these mirror
	apiVersion       = "7.20.0"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// scheduler answers a scheduler RPC. Every answer is a scheduler_reply
// with HTTP status 200, as BOINC's own scheduler gives, so that the client
// reads its messages and delays.
func (s *Server) scheduler(w http.ResponseWriter, r *http.Request) {
	rep := &reply{}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
	if err == nil {
		var req *schedulerRequest
		if req, err = decodeSchedulerRequest(body); err == nil {
			s.rpc(r.Context(), req, rep)
		}
	}
	if err != nil {
		s.cfg.Logger.Info("BOINC scheduler request refused", "remote", r.RemoteAddr, "err", err)
		rep.refuse(delayBadRequest, "The project could not read this request: %v", err)
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(s.encodeReply(rep))
}

// reply is a scheduler_reply being made.
type reply struct {
	messages     []string
	requestDelay float64
	hostID       int64
	user         *wu.UserStatus
	host         *wu.HostStatus
	codeSignKey  bool
	work         xmlWriter // app, file_info, app_version, workunit and result elements
	named        map[string]bool
	acks, aborts []string
	rpcDelay     bool
}

func (r *reply) notice(format string, args ...any) {
	r.messages = append(r.messages, fmt.Sprintf(format, args...))
}

// refuse answers with a message and a delay, and nothing else.
func (r *reply) refuse(delay float64, format string, args ...any) {
	r.notice(format, args...)
	r.requestDelay = delay
}

// once reports whether an element named name has not been written yet.
func (r *reply) once(name string) bool {
	if r.named == nil {
		r.named = map[string]bool{}
	}
	if r.named[name] {
		return false
	}
	r.named[name] = true
	return true
}

// rpc maps one scheduler request onto the project.
func (s *Server) rpc(ctx context.Context, req *schedulerRequest, rep *reply) {
	if !wu.ValidAccountKey(req.Authenticator) {
		rep.refuse(delayBadRequest, "Invalid or missing account key. To fix, remove and add this project.")
		return
	}
	keyHash := wu.AccountKeyHash(req.Authenticator)
	uid, ok := s.cfg.Directory.UserByKeyHash(keyHash)
	if !ok {
		rep.refuse(delayBadRequest, "Invalid or missing account key. To fix, remove and add this project.")
		return
	}
	host, err := s.resolveHost(ctx, req, uid)
	if err != nil {
		s.answerError(rep, err)
		return
	}
	if n := hostNumber(host); n != req.HostID {
		rep.hostID = n
	}
	mu := s.hostLock(host)
	mu.Lock()
	defer mu.Unlock()
	hello, err := request[wu.HelloReply](ctx, s, wu.VolunteerSubject(host, wu.OpHello), wu.Hello{V: wu.WireVersion, Host: describe(req)})
	if err != nil {
		s.answerError(rep, err)
		return
	}
	seq := hello.NextSeq
	s.report(ctx, req, host, &seq, rep)
	if held := s.tasksHeld(req); len(held) > 0 {
		beat, err := request[wu.BeatReply](ctx, s, wu.VolunteerSubject(host, wu.OpBeat), wu.Beat{V: wu.WireVersion, Seq: seq, Tasks: held})
		seq++
		if err != nil {
			s.answerError(rep, err)
			return
		}
		rep.aborts = append(rep.aborts, beat.Abort...)
		rep.rpcDelay = true
	}
	if req.wantsWork() {
		s.sendWork(ctx, req, host, seq, rep)
	}
	if rep.work.b.Len() > 0 || len(rep.acks) > 0 {
		s.forgetStatus()
	}
	s.credit(uid, host, rep)
	rep.codeSignKey = req.CodeSignKey != strings.TrimSpace(FormatPublicKey(s.cfg.CodeSignKey))
}

// answerError tells the client what went wrong: a refusal by the project
// for good, anything else as a reason to try again later.
func (s *Server) answerError(rep *reply, err error) {
	var e *wu.Error
	if errors.As(err, &e) && e.Code != wu.CodeInternal {
		rep.refuse(delayBadRequest, "%s", e.Message)
		return
	}
	s.cfg.Logger.Warn("BOINC scheduler request failed", "err", err)
	rep.refuse(delayRetry, "The project is busy; the request will be sent again later.")
}

// resolveHost finds the momonga host of the client: the one it names, if
// it is its user's, else the one its user attached with the key this side
// derives from the client's host identity, attaching it the first time.
func (s *Server) resolveHost(ctx context.Context, req *schedulerRequest, uid string) (string, error) {
	if req.HostID > 0 {
		id := "h" + strconv.FormatInt(req.HostID, 10)
		st := s.status()
		if h := findHost(st, id); h != nil && !h.Revoked && ownerID(st, h.User) == uid {
			return id, nil
		}
	}
	nkey, err := s.hostKey(wu.AccountKeyHash(req.Authenticator), req.Host.HostCPID)
	if err != nil {
		return "", err
	}
	if hc, ok := s.cfg.Directory.HostByNKey(nkey); ok && hc.User == uid && !hc.Revoked {
		return hc.ID, nil
	}
	at, err := request[wu.AttachReply](ctx, s, wu.AttachSubject(nkey),
		wu.AttachRequest{V: wu.WireVersion, AccountKey: req.Authenticator, NKey: nkey, Host: describe(req)})
	if err != nil {
		return "", err
	}
	s.forgetStatus()
	s.cfg.Logger.Info("BOINC host attached", "host", at.Host, "user", at.User)
	return at.Host, nil
}

// hostKey is the public nkey a BOINC host is attached with: derived from
// its user's key and the client's own host id, so that a request sent again
// attaches the same host, and keyed by the secret, so that nobody can
// connect to NATS as that host.
func (s *Server) hostKey(keyHash wu.Hash, cpid string) (string, error) {
	seed := s.mac("boinc host", string(keyHash), cpid)
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, seed[:32])
	if err != nil {
		return "", err
	}
	return kp.PublicKey()
}

func findHost(st wu.StatusReply, id string) *wu.HostStatus {
	for i := range st.Hosts {
		if st.Hosts[i].ID == id {
			return &st.Hosts[i]
		}
	}
	return nil
}

func findUser(st wu.StatusReply, id string) *wu.UserStatus {
	for i := range st.Users {
		if st.Users[i].ID == id {
			return &st.Users[i]
		}
	}
	return nil
}

// ownerID is the id of the user named name.
func ownerID(st wu.StatusReply, name string) string {
	for _, u := range st.Users {
		if u.Name == name {
			return u.ID
		}
	}
	return ""
}

// hostNumber is BOINC's integer id of host "hN": N.
func hostNumber(id string) int64 {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, "h"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// describe is the client's host in momonga's terms.
func describe(req *schedulerRequest) wu.HostInfo {
	h := req.Host
	return wu.HostInfo{
		Name:           clip(h.DomainName, wu.MaxNameBytes),
		OS:             clip(osName(h.OSName), 32),
		Arch:           clip(arch(req.PlatformName), 32),
		CPUs:           min(max(h.NCPUs, 0), 4096),
		MemoryBytes:    nonNegative(h.MemBytes),
		FLOPS:          float64(nonNegative(h.FPOps)),
		OSVersion:      clip(h.OSVersion, 256),
		CPUModel:       clip(strings.TrimSpace(h.Vendor+" "+h.Model), 256),
		IOPS:           float64(nonNegative(h.IOps)),
		MemBytesPerSec: float64(nonNegative(h.MemBW)),
		DiskFreeBytes:  nonNegative(h.DiskFree),
	}
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}

func nonNegative(v float64) int64 {
	if !(v > 0) || v > math.MaxInt64/2 {
		return 0
	}
	return int64(v)
}

func osName(boinc string) string {
	switch s := strings.ToLower(boinc); {
	case strings.Contains(s, "windows"):
		return "windows"
	case strings.Contains(s, "darwin"):
		return "darwin"
	case strings.Contains(s, "linux"):
		return "linux"
	default:
		return s
	}
}

func arch(platform string) string {
	switch {
	case strings.HasPrefix(platform, "x86_64"), strings.HasPrefix(platform, "windows_x86_64"):
		return "amd64"
	case strings.HasPrefix(platform, "aarch64"), strings.HasPrefix(platform, "arm64"):
		return "arm64"
	default:
		arch, _, _ := strings.Cut(platform, "-")
		return arch
	}
}

// tasksHeld are the tasks the client still holds, for a beat: the ones it
// lists as in progress.
func (s *Server) tasksHeld(req *schedulerRequest) []wu.TaskProgress {
	var held []wu.TaskProgress
	for _, name := range req.OtherResults {
		if name != "" && len(name) <= 2*wu.MaxNameBytes {
			held = append(held, wu.TaskProgress{Task: name})
		}
	}
	return held
}

// report reports the client's finished tasks. A task the project refuses
// for good (not this host's, malformed) is acknowledged all the same, with
// a message, so that the client stops reporting it; one the project could
// not take now is not, so that the client reports it again.
func (s *Server) report(ctx context.Context, req *schedulerRequest, host string, seq *uint64, rep *reply) {
	for _, res := range req.Results {
		report := s.reportOf(host, res)
		report.Seq = *seq
		*seq++
		_, err := request[wu.Ack](ctx, s, wu.VolunteerSubject(host, wu.OpResult), report)
		var e *wu.Error
		switch {
		case err == nil:
			rep.acks = append(rep.acks, res.Name)
			s.dropStaged(outputName(res.Name))
		case errors.As(err, &e) && e.Code != wu.CodeInternal && e.Code != wu.CodeNotFound:
			rep.acks = append(rep.acks, res.Name)
			rep.notice("Task %s was not accepted: %s", res.Name, e.Message)
		default:
			s.cfg.Logger.Warn("BOINC result not recorded; the client will report it again", "host", host, "task", res.Name, "err", err)
		}
	}
}

// reportOf is a momonga report of a task the client finished.
func (s *Server) reportOf(host string, res reportedResult) wu.Report {
	r := wu.Report{V: wu.WireVersion, Task: res.Name, ExitCode: res.ExitStatus, CPUSeconds: max(res.FinalCPUTime, 0), Outcome: wu.OutcomeFailure}
	if res.State == resultFilesUploaded && res.ExitStatus == 0 {
		if out, ok := s.staged(host, outputName(res.Name)); ok {
			r.Outcome, r.Output, r.OutputSize = wu.OutcomeSuccess, out.Hash, out.Size
			return r
		}
		r.Reason = "the BOINC client reported an output this project did not receive"
		return r
	}
	r.Reason = fmt.Sprintf("the BOINC client reported exit status %d (task state %d)", res.ExitStatus, res.State)
	if line := lastLine(res.Stderr); line != "" {
		r.Reason += ": " + clip(line, 512)
	}
	return r
}

// lastLine is the last line of the app's stderr worth showing.
func lastLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "<") && !strings.HasPrefix(l, "]]>") {
			return l
		}
	}
	return ""
}

// credit fills in the user's and host's credit.
func (s *Server) credit(uid, host string, rep *reply) {
	st := s.status()
	rep.user = findUser(st, uid)
	rep.host = findHost(st, host)
}

// outputName is the BOINC file name of a task's output.
func outputName(task string) string { return task + "_out" }

// encodeReply writes a scheduler_reply.
func (s *Server) encodeReply(rep *reply) []byte {
	var w xmlWriter
	w.open("scheduler_reply")
	w.int("scheduler_version", schedulerVersion)
	w.str("master_url", s.cfg.URL)
	w.str("project_name", s.cfg.ProjectName)
	for _, m := range rep.messages {
		// BOINC's parser reads a message to the end of its element: one line.
		w.b.WriteString(`    <message priority="notice">`)
		_ = xml.EscapeText(&w.b, []byte(strings.ReplaceAll(m, "\n", " ")))
		w.b.WriteString("</message>\n")
	}
	w.num("request_delay", rep.requestDelay)
	if rep.rpcDelay || rep.work.b.Len() > 0 {
		w.num("next_rpc_delay", s.cfg.RPCInterval.Seconds())
	}
	if rep.hostID != 0 {
		w.int("hostid", rep.hostID)
	}
	if u := rep.user; u != nil {
		w.str("user_name", u.Name)
		w.num("user_total_credit", u.Credit)
		w.num("user_expavg_credit", u.RAC)
		w.num("user_create_time", math.Floor(unixSeconds(u.Created)))
		if u.Team != "" {
			w.str("team_name", u.Team)
		}
	}
	if h := rep.host; h != nil {
		w.num("host_total_credit", h.Credit)
		w.num("host_expavg_credit", h.RAC)
	}
	if rep.codeSignKey {
		w.block("code_sign_key", FormatPublicKey(s.cfg.CodeSignKey))
	}
	w.b.Write(rep.work.b.Bytes())
	for _, name := range rep.acks {
		w.b.WriteString("<result_ack>\n")
		w.str("name", name)
		w.b.WriteString("</result_ack>\n")
	}
	for _, name := range rep.aborts {
		w.b.WriteString("<result_abort>\n")
		w.str("name", name)
		w.b.WriteString("</result_abort>\n")
	}
	w.close("scheduler_reply")
	return w.b.Bytes()
}

// uploadToken binds an output file to the host it was sent to: BOINC's
// xml_signature, which the client hands back with the file.
func (s *Server) uploadToken(host, name string, maxBytes int64) string {
	return host + ":" + hex.EncodeToString(s.mac("boinc upload", host, name, strconv.FormatInt(maxBytes, 10)))
}

// checkUploadToken returns the host an upload's token was made for.
func (s *Server) checkUploadToken(token, name string, maxBytes int64) (string, bool) {
	host, _, ok := strings.Cut(token, ":")
	if !ok || !wu.ValidHostID(host) {
		return "", false
	}
	return host, hmac.Equal([]byte(s.uploadToken(host, name, maxBytes)), []byte(token))
}
