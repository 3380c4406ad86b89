package boinc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/momonga-project/momonga/internal/atomicfile"
	wu "github.com/momonga-project/momonga/workunits"
)

// The master page, downloads and BOINC's upload handler.

// masterPage names the scheduler both ways BOINC clients look for it. It
// is text/template with explicit escaping, because html/template would
// drop the comment that hides the <scheduler> element from browsers.
var masterPage = template.Must(template.New("master").Funcs(template.FuncMap{"h": html.EscapeString}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{h .Name}}</title>
<link rel="boinc_scheduler" href="{{h .Scheduler}}">
</head><body>
<h1>{{h .Name}}</h1>
<p>This is a momonga project. To compute for it with BOINC, attach your BOINC client with your account key:</p>
<pre>boinccmd --project_attach {{h .URL}} ACCOUNT_KEY</pre>
<!--
<scheduler>{{h .Scheduler}}</scheduler>
-->
</body></html>
`))

// master serves the master page, which names the scheduler.
func (s *Server) master(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = masterPage.Execute(w, struct{ Name, URL, Scheduler string }{s.cfg.ProjectName, s.cfg.URL, s.cfg.URL + pathScheduler})
}

// download serves an app version's or a task's file: a runner, or a blob
// by its hash.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for platform, run := range s.cfg.Runners {
		if name == runnerName(platform, run) {
			f, err := os.Open(run.Path)
			if err != nil {
				http.Error(w, "the app is missing on the server", http.StatusInternalServerError)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, name, time.Time{}, f)
			return
		}
	}
	h := wu.Hash(strings.TrimSuffix(name, ".wasm"))
	if !h.Valid() {
		http.NotFound(w, r)
		return
	}
	b, err := s.cfg.Blobs.Get(r.Context(), h)
	if err != nil {
		var e *wu.Error
		if errors.As(err, &e) && e.Code == wu.CodeNotFound {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "the file cannot be read now; try again later", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// uploadError is a refusal by the upload handler: permanent, or worth
// trying again.
type uploadError struct {
	transient bool
	msg       string
}

func (e *uploadError) Error() string { return e.msg }

func permanent(format string, args ...any) error {
	return &uploadError{msg: fmt.Sprintf(format, args...)}
}

func transient(format string, args ...any) error {
	return &uploadError{transient: true, msg: fmt.Sprintf(format, args...)}
}

// upload is BOINC's file upload handler: a size query, or a file's bytes
// from an offset. Only the host an output file was sent to may upload it
// (its token says which), no more than the size the scheduler allowed; a
// whole file whose md5 matches goes into the blob store.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	size, err := s.receive(r.Context(), r.Body)
	w.Header().Set("Content-Type", "text/plain")
	var b strings.Builder
	b.WriteString("<data_server_reply>\n")
	var ue *uploadError
	switch {
	case err == nil:
		b.WriteString("    <status>0</status>\n")
		fmt.Fprintf(&b, "    <file_size>%d</file_size>\n", size)
	case errors.As(err, &ue):
		status := -1
		if ue.transient {
			status = 1
		}
		fmt.Fprintf(&b, "    <status>%d</status>\n    <message>", status)
		_ = xmlEscapeString(&b, ue.msg)
		b.WriteString("</message>\n")
	default:
		s.cfg.Logger.Warn("BOINC upload failed", "err", err)
		b.WriteString("    <status>1</status>\n    <message>the server could not store the file; try again later</message>\n")
	}
	b.WriteString("</data_server_reply>\n")
	_, _ = io.WriteString(w, b.String())
}

func xmlEscapeString(b *strings.Builder, s string) error {
	var buf bytes.Buffer
	if err := xml.EscapeText(&buf, []byte(strings.ReplaceAll(s, "\n", " "))); err != nil {
		return err
	}
	b.Write(buf.Bytes())
	return nil
}

// readUploadHeader reads an upload's XML up to the line "<data>", and
// reports whether that line came.
func readUploadHeader(br *bufio.Reader) ([]byte, bool, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(head)+len(line) > maxUploadHeader || errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, permanent("upload header over %d bytes", maxUploadHeader)
		}
		head = append(head, line...)
		if strings.TrimSpace(string(line)) == "<data>" {
			return head, true, nil
		}
		if err == io.EOF {
			return head, false, nil
		}
		if err != nil {
			return nil, false, transient("the upload was cut short: %v", err)
		}
	}
}

// receive handles one upload request and returns how many bytes of the
// file the server holds.
func (s *Server) receive(ctx context.Context, body io.Reader) (int64, error) {
	br := bufio.NewReaderSize(body, maxUploadHeader)
	head, data, err := readUploadHeader(br)
	if err != nil {
		return 0, err
	}
	req, _, err := decodeUploadHeader(head)
	if err != nil {
		return 0, permanent("%v", err)
	}
	if req.GetFileSize != "" {
		if !validUploadName(req.GetFileSize) {
			return 0, permanent("invalid file name")
		}
		return s.stagedSize(req.GetFileSize), nil
	}
	if !data {
		return 0, permanent("missing <data> tag")
	}
	if !validUploadName(req.Name) {
		return 0, permanent("invalid file name")
	}
	host, ok := s.checkUploadToken(req.Signature, req.Name, req.MaxBytes)
	if !ok {
		return 0, permanent("invalid signature: this file was not assigned to this host")
	}
	switch {
	case req.MaxBytes > wu.MaxOutputBytes:
		return 0, permanent("file size limit over the project's %d bytes", wu.MaxOutputBytes)
	case req.NBytes > req.MaxBytes:
		return 0, permanent("file size (%d KB) exceeds limit (%d KB)", req.NBytes/1024, req.MaxBytes/1024)
	case req.Offset > req.NBytes:
		return 0, permanent("offset %d past the file's %d bytes", req.Offset, req.NBytes)
	}
	mu := s.fileLock(req.Name)
	mu.Lock()
	defer mu.Unlock()
	if done, ok := s.readStaged(req.Name); ok {
		if done.Host != host || done.Size != req.NBytes {
			return 0, permanent("this file was uploaded already with other contents")
		}
		return done.Size, nil
	}
	return s.stage(ctx, host, req, br)
}

// validUploadName admits the output files the scheduler names.
func validUploadName(name string) bool {
	return strings.HasSuffix(name, "_out") && wu.ValidName(name) && len(name) <= 2*wu.MaxNameBytes
}

func (s *Server) fileLock(name string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte("file " + name))
	return &s.hostMu[h.Sum32()%uint32(len(s.hostMu))]
}

// stagedOutput is a whole uploaded output, stored as a blob.
type stagedOutput struct {
	Host string  `json:"host"`
	Hash wu.Hash `json:"hash"`
	Size int64   `json:"size"`
}

func (s *Server) stagingPath(name string) string { return filepath.Join(s.cfg.UploadDir, name) }
func (s *Server) donePath(name string) string    { return filepath.Join(s.cfg.UploadDir, name+".done") }

func (s *Server) readStaged(name string) (stagedOutput, bool) {
	b, err := os.ReadFile(s.donePath(name))
	if err != nil {
		return stagedOutput{}, false
	}
	var o stagedOutput
	if json.Unmarshal(b, &o) != nil || !o.Hash.Valid() {
		return stagedOutput{}, false
	}
	return o, true
}

// staged is the output a host uploaded under name.
func (s *Server) staged(host, name string) (stagedOutput, bool) {
	o, ok := s.readStaged(name)
	if !ok || o.Host != host {
		return stagedOutput{}, false
	}
	return o, true
}

// stagedSize is how many bytes of a file the server holds.
func (s *Server) stagedSize(name string) int64 {
	if o, ok := s.readStaged(name); ok {
		return o.Size
	}
	if st, err := os.Stat(s.stagingPath(name)); err == nil {
		return st.Size()
	}
	return 0
}

// dropStaged forgets an output once its task's report is recorded.
func (s *Server) dropStaged(name string) {
	mu := s.fileLock(name)
	mu.Lock()
	defer mu.Unlock()
	os.Remove(s.donePath(name))
	os.Remove(s.stagingPath(name))
}

// stage writes an upload's bytes from its offset and, once the file is
// whole, checks its md5 and stores it.
func (s *Server) stage(ctx context.Context, host string, req *uploadRequest, data io.Reader) (int64, error) {
	path := s.stagingPath(req.Name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() < req.Offset {
		return st.Size(), transient("length of file %s %d bytes < offset %d bytes", req.Name, st.Size(), req.Offset)
	}
	if err := f.Truncate(req.Offset); err != nil {
		return 0, err
	}
	if _, err := f.Seek(req.Offset, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(f, io.LimitReader(data, req.NBytes-req.Offset))
	have := req.Offset + n
	if err != nil || have < req.NBytes {
		return have, transient("incomplete upload: %d of %d bytes", have, req.NBytes)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	whole, err := io.ReadAll(f)
	if err != nil {
		return 0, err
	}
	if sum := md5.Sum(whole); req.MD5 != "" && !strings.EqualFold(hex.EncodeToString(sum[:]), req.MD5) {
		os.Remove(path)
		return 0, permanent("md5 of the uploaded file does not match %s", req.MD5)
	}
	h := wu.HashOf(whole)
	if err := s.store(ctx, host, h, whole); err != nil {
		return have, err
	}
	b, _ := json.Marshal(stagedOutput{Host: host, Hash: h, Size: int64(len(whole))})
	if err := atomicfile.Write(s.donePath(req.Name), b, 0o600); err != nil {
		return 0, err
	}
	os.Remove(path)
	return int64(len(whole)), nil
}

// storeChunk is how much of an output goes to the blob store at once, as
// a volunteer's chunked upload.
const storeChunk = 256 << 10

// store puts a whole output into the blob store through the uploads.
func (s *Server) store(ctx context.Context, host string, h wu.Hash, b []byte) error {
	size := int64(len(b))
	for off := int64(0); ; {
		end := min(off+storeChunk, size)
		done, err := s.cfg.Uploads.Chunk(ctx, host, h, size, off, b[off:end])
		if err != nil {
			return fmt.Errorf("store output %s: %w", h.Short(), err)
		}
		if done >= size {
			return nil
		}
		if done <= off && end > off {
			return transient("the blob store did not take the upload; try again later")
		}
		off = done
	}
}
