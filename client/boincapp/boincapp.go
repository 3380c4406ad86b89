// Package boincapp is the app's side of BOINC's app protocol (DESIGN §10),
// written from BOINC's lib/app_ipc.* and api/boinc_api.cpp: what the
// momonga runner needs to run as a BOINC app inside a BOINC client's slot
// directory. It reads init_data.xml, resolves BOINC's soft links from the
// logical names of a task's files to the files in the project directory,
// talks to the client through the shared memory of the slot
// (boinc_mmap_file, or a named file mapping on Windows: heartbeats,
// suspend, resume, quit and abort one way, CPU time, fraction done and
// checkpoints the other) and writes boinc_finish_called when the task is
// done, as BOINC's own API does.
package boincapp

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Files of a slot directory (lib/app_ipc.h).
const (
	InitDataFile      = "init_data.xml"
	FinishCalledFile  = "boinc_finish_called"
	TemporaryExitFile = "boinc_temporary_exit"
	MmapFile          = "boinc_mmap_file"
)

// Exit statuses the client knows (lib/common_defs.h).
const (
	ExitAbortedByClient = 194
)

// InitData is what the app reads of init_data.xml (APP_INIT_DATA).
type InitData struct {
	XMLName          xml.Name `xml:"app_init_data"`
	MajorVersion     int      `xml:"major_version"`
	AppName          string   `xml:"app_name"`
	ProjectDir       string   `xml:"project_dir"`
	WorkUnit         string   `xml:"wu_name"`
	Result           string   `xml:"result_name"`
	Slot             int      `xml:"slot"`
	ClientPID        int      `xml:"client_pid"`
	CommObjName      string   `xml:"comm_obj_name"` // Windows: the shared memory's name
	ShmKey           int      `xml:"shm_key"`       // -1: the mmap'ed file of the slot
	WUCPUTime        float64  `xml:"wu_cpu_time"`   // CPU time of the task's earlier episodes
	CheckpointPeriod float64  `xml:"checkpoint_period"`
	FPOpsEst         float64  `xml:"rsc_fpops_est"`
	FPOpsBound       float64  `xml:"rsc_fpops_bound"`
	MemoryBound      float64  `xml:"rsc_memory_bound"`
	FractionStart    float64  `xml:"fraction_done_start"`
	FractionEnd      float64  `xml:"fraction_done_end"`
}

// maxInitData bounds init_data.xml: it holds the preferences too.
const maxInitData = 1 << 20

// ReadInitData reads init_data.xml in dir.
func ReadInitData(dir string) (InitData, error) {
	var d InitData
	f, err := os.Open(filepath.Join(dir, InitDataFile))
	if err != nil {
		return d, fmt.Errorf("read %s: %w (is this running under a BOINC client?)", InitDataFile, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInitData+1))
	if err != nil {
		return d, err
	}
	return ParseInitData(b)
}

// ParseInitData reads init_data.xml's contents.
func ParseInitData(b []byte) (InitData, error) {
	var d InitData
	if len(b) > maxInitData {
		return d, fmt.Errorf("%s is over %d bytes", InitDataFile, maxInitData)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = false
	dec.AutoClose = xml.HTMLAutoClose
	dec.Entity = xml.HTMLEntity
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("malformed %s: %v", InitDataFile, err)
	}
	if d.XMLName.Local != "app_init_data" {
		return d, fmt.Errorf("%s is not an app_init_data", InitDataFile)
	}
	if d.FractionEnd <= d.FractionStart {
		d.FractionStart, d.FractionEnd = 0, 1
	}
	return d, nil
}

// maxLink bounds the first line of a soft link that is read.
const maxLink = 4096

// Resolve finds the file a logical name of the slot dir stands for: the
// target of a BOINC soft link (a file whose first line is
// <soft_link>PATH</soft_link>, PATH relative to the slot), or the name
// itself (a symbolic link, a copied file, or standalone). Like BOINC's
// boinc_resolve_filename, it returns the name unchanged when there is no
// link.
func Resolve(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	if st, err := os.Lstat(path); err != nil {
		return "", fmt.Errorf("resolve %s: %w", name, err)
	} else if st.Mode()&os.ModeSymlink != 0 || !st.Mode().IsRegular() {
		return path, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", name, err)
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(io.LimitReader(f, maxLink), maxLink).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("resolve %s: %w", name, err)
	}
	target, ok := between(line, "<soft_link>", "</soft_link>")
	if !ok {
		return path, nil
	}
	target = strings.TrimSpace(target)
	if target == "" {
		return "", fmt.Errorf("resolve %s: an empty soft link", name)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(dir, filepath.FromSlash(target))
	}
	return target, nil
}

func between(s, open, close string) (string, bool) {
	_, rest, ok := strings.Cut(s, open)
	if !ok {
		return "", false
	}
	v, _, ok := strings.Cut(rest, close)
	return v, ok
}

// Finish writes boinc_finish_called in dir: the task is done, with status
// 0 for success, and an optional message to show the volunteer. Without
// it the client takes the app's exit for a crash and runs it again.
func Finish(dir string, status int, message string) error {
	var b strings.Builder
	b.WriteString(strconv.Itoa(status) + "\n")
	if message != "" {
		b.WriteString(strings.ReplaceAll(message, "\n", " ") + "\n\n")
	}
	return writeFileSync(filepath.Join(dir, FinishCalledFile), []byte(b.String()))
}

// TemporaryExit writes boinc_temporary_exit: the client runs the task again
// after delay seconds, without counting it as a crash.
func TemporaryExit(dir string, delay int, reason string) error {
	return writeFileSync(filepath.Join(dir, TemporaryExitFile), []byte(strconv.Itoa(delay)+"\n"+strings.ReplaceAll(reason, "\n", " ")+"\n"))
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
