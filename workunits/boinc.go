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
