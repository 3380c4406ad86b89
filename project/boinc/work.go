package boinc

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strings"

	wu "github.com/momonga-project/momonga/workunits"
)

// Work for a BOINC client: each momonga assignment becomes the elements of
// BOINC's reply that describe it. The BOINC app is named after the momonga
// app; its version for the client's platform has two files, both signed
// with the code-signing key when the app was added: the runner for that
// platform (the main program) and the app's module. A file without a
// stored signature is never sent: the client would refuse it. The work
// unit names the task's input and checkpoint files and carries the rest of
// the task in its command line (workunits.BOINCTask); the result names the
// output file, which only the host it was sent to can upload.

// Bounds of a work request.
const maxSlots = 16

// fileMeta is what a reply says of a file.
type fileMeta struct {
	Size int64
	MD5  string
	Sig  string // for an app version's file
}

// sendWork asks the scheduler for tasks for the client and describes them.
func (s *Server) sendWork(ctx context.Context, req *schedulerRequest, host string, seq uint64, rep *reply) {
	platform, runner, ok := s.runnerFor(req)
	if !ok {
		rep.notice("This project has no app for this computer's platform (%s) yet.", req.PlatformName)
		return
	}
	if _, err := s.codeSignature("the BOINC app for "+platform, runner.MD5); err != nil {
		s.logUnsigned(runner.MD5, err)
		rep.notice("This project's app for this computer's platform (%s) is not signed yet.", platform)
		rep.requestDelay = max(rep.requestDelay, delayRetry)
		return
	}
	slots := int(math.Ceil(req.CPUReqInstances))
	slots = min(max(slots, 1), max(req.Host.NCPUs, 1), maxSlots)
	// The client names the tasks it holds (<other_results>) and those it
	// reports: the scheduler sends again those it gave the host and the
	// client does not name, lost with a reply that never reached it, as
	// BOINC's own scheduler does when the project resends lost results.
	var held []string
	for _, t := range s.tasksHeld(req) {
		held = append(held, t.Task)
	}
	for _, r := range req.Results {
		if r.Name != "" && len(r.Name) <= 2*wu.MaxNameBytes {
			held = append(held, r.Name)
		}
	}
	all := len(held) <= wu.MaxHeldReport
	if !all {
		held = nil
	}
	work, err := request[wu.WorkReply](ctx, s, wu.VolunteerSubject(host, wu.OpWork), wu.WorkRequest{V: wu.WireVersion, Seq: seq, Slots: slots, Held: held, HeldAll: all})
	if err != nil {
		s.answerError(rep, err)
		return
	}
	if len(work.Assignments) == 0 {
		rep.notice("No tasks are available right now.")
		rep.requestDelay = max(rep.requestDelay, work.RetrySeconds)
		return
	}
	for _, a := range work.Assignments {
		if err := s.writeTask(ctx, rep, host, platform, runner, req.Host.FPOps, a); err != nil {
			// The task's lease runs out and it goes to another host.
			s.cfg.Logger.Warn("BOINC task not sent", "host", host, "task", a.Task, "err", err)
		}
	}
	rep.rpcDelay = true
}

// runnerFor picks the first of the client's platforms the app is built for.
func (s *Server) runnerFor(req *schedulerRequest) (string, Runner, bool) {
	for _, p := range req.platforms() {
		if r, ok := s.cfg.Runners[p]; ok {
			return p, r, true
		}
	}
	return "", Runner{}, false
}

// codeSignature is the stored code signature of an app version's file
// whose md5 is sum, checked as the client will check it.
func (s *Server) codeSignature(what, sum string) (string, error) {
	if v, ok := s.signed.Load(sum); ok {
		return v.(string), nil
	}
	sig, ok := s.cfg.Directory.CodeSignature(sum)
	if !ok {
		return "", fmt.Errorf("%s (md5 %s) has no BOINC code signature, and BOINC clients run no unsigned file: sign it by adding the app again with `momonga-project app add NAME FILE.wasm`, given this project's %s (--data or --code-sign-key) and the BOINC apps this server serves (--boinc-apps)",
			what, sum, CodeSignPrivateFile)
	}
	if err := VerifyFile(s.cfg.CodeSignKey, sum, sig); err != nil {
		return "", fmt.Errorf("%s (md5 %s): its stored BOINC code signature is not by this project's code-signing key (%s): add the app again with the key whose public half this server has: %w",
			what, sum, CodeSignPublicFile, err)
	}
	s.signed.Store(sum, sig)
	return sig, nil
}

// logUnsigned says once per file that it cannot be sent for want of a
// signature: every client of its platform would repeat it.
func (s *Server) logUnsigned(sum string, err error) {
	if _, seen := s.missing.LoadOrStore(sum, struct{}{}); !seen {
		s.cfg.Logger.Error("BOINC app file not sent", "err", err)
	}
}

// moduleMeta describes an app's module with its code signature.
func (s *Server) moduleMeta(ctx context.Context, app string, h wu.Hash) (fileMeta, error) {
	if v, ok := s.modules.Load(h); ok {
		return v.(fileMeta), nil
	}
	m, _, err := s.blobMeta(ctx, h)
	if err != nil {
		return m, err
	}
	if m.Sig, err = s.codeSignature(fmt.Sprintf("the module %s of app %s", h.Short(), app), m.MD5); err != nil {
		s.logUnsigned(m.MD5, err)
		return m, err
	}
	s.modules.Store(h, m)
	return m, nil
}

// blobMeta reads a blob and describes it.
func (s *Server) blobMeta(ctx context.Context, h wu.Hash) (fileMeta, []byte, error) {
	b, err := s.cfg.Blobs.Get(ctx, h)
	if err != nil {
		return fileMeta{}, nil, fmt.Errorf("blob %s: %w", h.Short(), err)
	}
	if wu.HashOf(b) != h {
		return fileMeta{}, nil, fmt.Errorf("blob %s does not have its hash", h.Short())
	}
	return fileMeta{Size: int64(len(b)), MD5: md5Hex(b)}, b, nil
}

// versionNum numbers the app version of a module and a runner, the same on
// every server: a new module or a new runner is a new version.
func versionNum(module wu.Hash, runner Runner) int64 {
	h := fnv.New32a()
	h.Write([]byte(module))
	h.Write([]byte(runner.MD5))
	return int64(h.Sum32()%2_000_000_000) + 1
}

// runnerName is the BOINC file name of a runner: one per build.
func runnerName(platform string, r Runner) string {
	return strings.Replace(RunnerFile(platform), runnerPrefix, runnerPrefix+r.MD5[:12]+"_", 1)
}

// writeTask describes one assignment in the reply.
func (s *Server) writeTask(ctx context.Context, rep *reply, host, platform string, runner Runner, flops float64, a wu.Assignment) error {
	module, err := s.moduleMeta(ctx, a.App, a.AppHash)
	if err != nil {
		return err
	}
	runnerSig, err := s.codeSignature("the BOINC app for "+platform, runner.MD5)
	if err != nil {
		return err
	}
	type input struct {
		hash wu.Hash
		open string
	}
	var inputs []input
	if a.Stdin != "" {
		inputs = append(inputs, input{a.Stdin, wu.BOINCStdinFile})
	}
	ckpts := 0
	if a.Checkpoint != nil {
		for i, h := range a.Checkpoint.Blobs() {
			inputs = append(inputs, input{h, fmt.Sprintf("%s%d", wu.BOINCCheckpointFile, i)})
			ckpts++
		}
	}
	metas := make([]fileMeta, len(inputs))
	for i, in := range inputs {
		if metas[i], _, err = s.blobMeta(ctx, in.hash); err != nil {
			return err
		}
	}
	limits := a.Limits.WithDefaults()
	if flops <= 0 {
		flops = 1e9
	}
	version := versionNum(a.AppHash, runner)
	rName, mName := runnerName(platform, runner), string(a.AppHash)+".wasm"
	w := &rep.work

	if rep.once("app " + a.App) {
		w.open("app")
		w.str("name", a.App)
		w.str("user_friendly_name", a.App)
		w.close("app")
	}
	if rep.once("file " + rName) {
		s.writeFile(w, rName, fileMeta{Size: runner.Size, MD5: runner.MD5, Sig: runnerSig}, true)
	}
	if rep.once("file " + mName) {
		s.writeFile(w, mName, module, false)
	}
	if rep.once(fmt.Sprintf("version %s %s %d", a.App, platform, version)) {
		w.open("app_version")
		w.str("app_name", a.App)
		w.int("version_num", version)
		w.str("platform", platform)
		w.str("api_version", apiVersion)
		w.num("avg_ncpus", 1)
		w.num("flops", flops)
		w.b.WriteString("<file_ref>\n")
		w.str("file_name", rName)
		w.flag("main_program")
		w.b.WriteString("</file_ref>\n<file_ref>\n")
		w.str("file_name", mName)
		w.str("open_name", wu.BOINCModuleFile)
		w.b.WriteString("</file_ref>\n")
		w.close("app_version")
	}
	for i, in := range inputs {
		if rep.once("file " + string(in.hash)) {
			s.writeFile(w, string(in.hash), metas[i], false)
		}
	}
	out := outputName(a.Task)
	w.open("file_info")
	w.str("name", out)
	w.flag("generated_locally")
	w.flag("upload_when_present")
	w.int("max_nbytes", limits.OutputBytes)
	w.str("url", s.cfg.URL+pathUpload)
	w.block("xml_signature", s.uploadToken(host, out, limits.OutputBytes)+"\n")
	w.close("file_info")

	task := wu.BOINCTask{
		V: wu.WireVersion, Task: a.Task, WorkUnit: a.WorkUnit, App: a.App, AppHash: a.AppHash, Args: a.Args,
		Limits: limits, Stdin: a.Stdin != "", Checkpoints: ckpts, CheckpointSeconds: a.CheckpointSeconds,
	}
	bound := limits.MaxSeconds * flops
	est := a.FPOps
	if est <= 0 || est > bound {
		est = min(60*flops, bound)
	}
	w.open("workunit")
	w.str("name", a.WorkUnit)
	w.str("app_name", a.App)
	w.int("version_num", version)
	w.str("command_line", task.BOINCCommandLine())
	w.num("rsc_fpops_est", est)
	w.num("rsc_fpops_bound", bound)
	// The runner and wazero need memory and disk of their own beside the
	// module's; checkpoints are kept in the slot.
	w.int("rsc_memory_bound", limits.MemoryBytes+256<<20)
	w.int("rsc_disk_bound", limits.OutputBytes+4*limits.MemoryBytes+256<<20)
	for _, in := range inputs {
		w.b.WriteString("<file_ref>\n")
		w.str("file_name", string(in.hash))
		w.str("open_name", in.open)
		w.b.WriteString("</file_ref>\n")
	}
	w.close("workunit")

	w.open("result")
	w.str("name", a.Task)
	w.str("wu_name", a.WorkUnit)
	w.str("platform", platform)
	w.int("version_num", version)
	w.num("report_deadline", math.Floor(unixSeconds(a.Deadline)))
	w.flag("report_immediately")
	w.b.WriteString("<file_ref>\n")
	w.str("file_name", out)
	w.str("open_name", wu.BOINCOutputFile)
	w.b.WriteString("</file_ref>\n")
	w.close("result")
	return nil
}

// writeFile writes the file_info of a file clients download.
func (s *Server) writeFile(w *xmlWriter, name string, m fileMeta, executable bool) {
	w.open("file_info")
	w.str("name", name)
	w.str("url", s.cfg.URL+pathDownload+name)
	w.int("nbytes", m.Size)
	w.str("md5_cksum", m.MD5)
	if executable {
		w.flag("executable")
	}
	if m.Sig != "" {
		w.block("file_signature", m.Sig)
	}
	w.close("file_info")
}
