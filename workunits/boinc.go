package workunits

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// BOINCTask is what the momonga runner built as a BOINC app needs of a task
// beyond the files BOINC gives it (DESIGN §10): it travels in the work
// unit's command line, which BOINC hands to the app as its arguments. The
// module, its stdin and a checkpoint to resume from are the files of the
// app version and work unit, found by their logical names below.
type BOINCTask struct {
	V        int      `json:"v"`
	Task     string   `json:"task"`
	WorkUnit string   `json:"work_unit"` // keys the task's random stream, as on a momonga host
	App      string   `json:"app"`       // argv[0] seen by the module
	AppHash  Hash     `json:"app_hash"`
	Args     []string `json:"args,omitempty"`
	Limits   Limits   `json:"limits"`
	Stdin    bool     `json:"stdin,omitempty"`
	// Checkpoints is how many checkpoint files the task resumes from (its
	// chain, base first), made on any host.
	Checkpoints int `json:"checkpoints,omitempty"`
	// CheckpointSeconds, when set, is how often the work unit asks to be
	// checkpointed; otherwise BOINC's disk interval applies.
	CheckpointSeconds float64 `json:"checkpoint_seconds,omitempty"`
}

// Logical names of a BOINC task's files in its slot.
const (
	BOINCModuleFile = "app.wasm"
	BOINCStdinFile  = "stdin"
	BOINCOutputFile = "out"
	// BOINCCheckpointFile + N is the Nth file of the checkpoint chain.
	BOINCCheckpointFile = "ckpt"
)

// boincTaskFlag starts the command-line argument that carries a BOINCTask.
const boincTaskFlag = "--momonga-task="

// BOINCCommandLine is the work unit's command line for t: one argument,
// so that BOINC's splitting on white space cannot change it.
func (t BOINCTask) BOINCCommandLine() string {
	b, _ := json.Marshal(t)
	return boincTaskFlag + base64.RawURLEncoding.EncodeToString(b)
}

// ParseBOINCTask reads a BOINCTask back from the app's arguments.
func ParseBOINCTask(args []string) (BOINCTask, error) {
	var t BOINCTask
	for _, a := range args {
		enc, ok := strings.CutPrefix(a, boincTaskFlag)
		if !ok {
			continue
		}
		if len(enc) > 4*MaxMessageBytes {
			return t, Errorf(CodeTooLarge, "the task's description is over the size limit")
		}
		b, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			return t, Errorf(CodeBadRequest, "the task's description is not base64: %v", err)
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return t, Errorf(CodeBadRequest, "the task's description is malformed: %v", err)
		}
		return t, t.validate()
	}
	return t, Errorf(CodeBadRequest, "no %s argument: this program runs momonga tasks under a BOINC client", strings.TrimSuffix(boincTaskFlag, "="))
}

func (t BOINCTask) validate() error {
	switch {
	case t.Task == "" || len(t.Task) > 2*MaxNameBytes || !ValidName(t.App) || !t.AppHash.Valid():
		return Errorf(CodeBadRequest, "the task's description lacks its task, app or app hash")
	case len(t.Args) > MaxArgs || t.Checkpoints < 0 || t.Checkpoints > 2:
		return Errorf(CodeBadRequest, "the task's description has too many arguments or checkpoint files")
	case t.CheckpointSeconds < 0 || t.CheckpointSeconds > 24*3600:
		return Errorf(CodeBadRequest, "checkpoint interval out of range 0..1 day")
	}
	return t.Limits.Validate()
}

// CodeSignature is the BOINC code signature of one file of an app's BOINC
// app versions (DESIGN §10): the app's module, or the runner built for a
// platform. BOINC signs a file's md5, so the signature belongs to the md5;
// it is made once, where the project's code-signing key is, when the app is
// added, and the scheduler only sends it on.
type CodeSignature struct {
	// File is CodeSignedModule or the BOINC platform of a runner.
	File string `json:"file"`
	// MD5 is the signed file's md5, 32 lower-case hex digits, as BOINC
	// writes it.
	MD5 string `json:"md5"`
	// Signature is in BOINC's text form: hex lines closed by ".".
	Signature string `json:"signature"`
}

// CodeSignedModule names an app's module among its code signatures.
const CodeSignedModule = "module"

// Bounds of an app's code signatures: the module and a runner per
// platform, and a signature by a key of at most 1024 bits in hex lines.
const (
	MaxCodeSignatures     = 16
	MaxCodeSignatureBytes = 512
)

// ValidMD5 reports whether s is an md5 as BOINC writes it.
func ValidMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s CodeSignature) validate() error {
	if s.File != CodeSignedModule && !ValidName(s.File) {
		return Errorf(CodeBadRequest, "code signature of %q: the file is %q or a BOINC platform name", s.File, CodeSignedModule)
	}
	if !ValidMD5(s.MD5) {
		return Errorf(CodeBadRequest, "code signature of %s: md5 %q is not 32 lower-case hex digits", s.File, s.MD5)
	}
	if s.Signature == "" || len(s.Signature) > MaxCodeSignatureBytes {
		return Errorf(CodeBadRequest, "code signature of %s: empty or over %d bytes", s.File, MaxCodeSignatureBytes)
	}
	for _, c := range s.Signature {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || strings.ContainsRune(" \t\r\n.", c)) {
			return Errorf(CodeBadRequest, "code signature of %s: %q is not in BOINC's hex text form", s.File, c)
		}
	}
	return nil
}

// validateCodeSignatures checks an app's code signatures: each well formed,
// a file named once, and the module among them.
func validateCodeSignatures(sigs []CodeSignature) error {
	if len(sigs) == 0 {
		return nil
	}
	if len(sigs) > MaxCodeSignatures {
		return Errorf(CodeBadRequest, "%d code signatures, at most %d", len(sigs), MaxCodeSignatures)
	}
	seen := map[string]bool{}
	for _, s := range sigs {
		if err := s.validate(); err != nil {
			return err
		}
		if seen[s.File] {
			return Errorf(CodeBadRequest, "two code signatures of %s", s.File)
		}
		seen[s.File] = true
	}
	if !seen[CodeSignedModule] {
		return Errorf(CodeBadRequest, "the code signatures leave out the app's module")
	}
	return nil
}
