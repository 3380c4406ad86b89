package boinc

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The XML a stock BOINC client sends and reads, as its source writes and
// parses it (client/cs_scheduler.cpp, client/scheduler_op.cpp,
// client/result.cpp, client/client_types.cpp, lib/hostinfo.cpp,
// client/file_xfer.cpp). Requests are decoded leniently, as BOINC's own
// parser does (unknown elements are skipped, entities need not be
// declared); replies are written by hand, in the layout the client's
// line-oriented parts expect.

// Bounds of what the BOINC side reads.
const (
	// MaxRequestBytes bounds a scheduler request: a client reporting a
	// few hundred tasks with their stderr stays well below it.
	MaxRequestBytes = 4 << 20
	// maxUploadHeader bounds the XML before an upload's data.
	maxUploadHeader = 16 << 10
	// maxReported bounds the tasks one request reports or lists.
	maxReported = 1024
)

// schedulerRequest is what the BOINC side reads of a scheduler_request.
type schedulerRequest struct {
	XMLName         xml.Name         `xml:"scheduler_request"`
	Authenticator   string           `xml:"authenticator"`
	HostID          int64            `xml:"hostid"`
	RPCSeqno        int64            `xml:"rpc_seqno"`
	ClientMajor     int              `xml:"core_client_major_version"`
	ClientMinor     int              `xml:"core_client_minor_version"`
	ClientRelease   int              `xml:"core_client_release"`
	PlatformName    string           `xml:"platform_name"`
	AltPlatforms    []string         `xml:"alt_platform>name"`
	WorkReqSeconds  float64          `xml:"work_req_seconds"`
	CPUReqSecs      float64          `xml:"cpu_req_secs"`
	CPUReqInstances float64          `xml:"cpu_req_instances"`
	CodeSignKey     string           `xml:"code_sign_key"`
	CrossProjectID  string           `xml:"cross_project_id"`
	Host            hostInfo         `xml:"host_info"`
	Results         []reportedResult `xml:"result"`
	OtherResults    []string         `xml:"other_results>other_result>name"`
}

// hostInfo is a client's description of its machine (HOST_INFO::write).
type hostInfo struct {
	DomainName string  `xml:"domain_name"`
	HostCPID   string  `xml:"host_cpid"`
	NCPUs      int     `xml:"p_ncpus"`
	Vendor     string  `xml:"p_vendor"`
	Model      string  `xml:"p_model"`
	FPOps      float64 `xml:"p_fpops"`
	IOps       float64 `xml:"p_iops"`
	MemBW      float64 `xml:"p_membw"`
	MemBytes   float64 `xml:"m_nbytes"`
	DiskFree   float64 `xml:"d_free"`
	OSName     string  `xml:"os_name"`
	OSVersion  string  `xml:"os_version"`
}

// reportedResult is a finished task a client reports (RESULT::write with
// to_server).
type reportedResult struct {
	Name         string         `xml:"name"`
	FinalCPUTime float64        `xml:"final_cpu_time"`
	ExitStatus   int            `xml:"exit_status"`
	State        int            `xml:"state"`
	Stderr       string         `xml:"stderr_out"`
	Files        []reportedFile `xml:"file_info"`
}

// reportedFile is an uploaded output file of a reported task.
type reportedFile struct {
	Name   string  `xml:"name"`
	NBytes float64 `xml:"nbytes"`
	MD5    string  `xml:"md5_cksum"`
}

// Task states a client reports (lib/common_defs.h).
const resultFilesUploaded = 5

// newDecoder reads XML as BOINC writes it: no namespaces, entities that
// HTML knows, elements a sloppy writer leaves open closed by their parent.
func newDecoder(r io.Reader) *xml.Decoder {
	d := xml.NewDecoder(r)
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	return d
}

// decodeSchedulerRequest reads and checks a scheduler request.
func decodeSchedulerRequest(b []byte) (*schedulerRequest, error) {
	if len(b) > MaxRequestBytes {
		return nil, fmt.Errorf("request of %d bytes is over the %d-byte limit", len(b), MaxRequestBytes)
	}
	var req schedulerRequest
	if err := newDecoder(bytes.NewReader(b)).Decode(&req); err != nil {
		return nil, fmt.Errorf("malformed scheduler request: %v", err)
	}
	if req.XMLName.Local != "scheduler_request" {
		return nil, fmt.Errorf("not a scheduler request")
	}
	if len(req.Results) > maxReported || len(req.OtherResults) > maxReported {
		return nil, fmt.Errorf("a request lists at most %d tasks", maxReported)
	}
	req.Authenticator = strings.TrimSpace(req.Authenticator)
	req.CodeSignKey = strings.TrimSpace(req.CodeSignKey)
	req.PlatformName = strings.TrimSpace(req.PlatformName)
	for i := range req.AltPlatforms {
		req.AltPlatforms[i] = strings.TrimSpace(req.AltPlatforms[i])
	}
	for i := range req.OtherResults {
		req.OtherResults[i] = strings.TrimSpace(req.OtherResults[i])
	}
	for i := range req.Results {
		r := &req.Results[i]
		r.Name = strings.TrimSpace(r.Name)
		for j := range r.Files {
			r.Files[j].Name = strings.TrimSpace(r.Files[j].Name)
			r.Files[j].MD5 = strings.TrimSpace(r.Files[j].MD5)
		}
	}
	return &req, nil
}

// platforms lists the platforms the client runs, its own first.
func (r *schedulerRequest) platforms() []string {
	return append([]string{r.PlatformName}, r.AltPlatforms...)
}

// wantsWork reports whether the client asks for tasks.
func (r *schedulerRequest) wantsWork() bool { return r.WorkReqSeconds > 0 || r.CPUReqSecs > 0 }

// uploadRequest is a data_server_request: a size query, or a file's bytes
// from an offset (file_xfer.cpp, file_upload_handler.cpp).
type uploadRequest struct {
	GetFileSize string // a size query for this file
	Name        string
	Signature   string // the xml_signature the scheduler gave with the file
	MaxBytes    int64
	NBytes      int64
	MD5         string
	Offset      int64
}

// uploadHeader is the XML of a data_server_request up to its <data> tag.
type uploadHeader struct {
	XMLName     xml.Name `xml:"data_server_request"`
	GetFileSize string   `xml:"get_file_size"`
	Upload      *struct {
		File struct {
			Name      string  `xml:"name"`
			Signature string  `xml:"xml_signature"`
			MaxBytes  float64 `xml:"max_nbytes"`
		} `xml:"file_info"`
		NBytes float64 `xml:"nbytes"`
		MD5    string  `xml:"md5_cksum"`
		Offset float64 `xml:"offset"`
	} `xml:"file_upload"`
}

// decodeUploadHeader splits an upload's body into its request and the
// file's bytes after <data>. A size query has no data.
func decodeUploadHeader(body []byte) (*uploadRequest, []byte, error) {
	head, data, found := bytes.Cut(body, []byte("<data>\n"))
	if !found {
		head, data, found = bytes.Cut(body, []byte("<data>"))
	}
	if len(head) > maxUploadHeader {
		return nil, nil, fmt.Errorf("upload header over %d bytes", maxUploadHeader)
	}
	xmlText := head
	if found {
		// The header's elements are left open where the data starts.
		xmlText = append(bytes.Clone(head), "</file_upload></data_server_request>"...)
	}
	var h uploadHeader
	if err := newDecoder(bytes.NewReader(xmlText)).Decode(&h); err != nil {
		return nil, nil, fmt.Errorf("malformed upload request: %v", err)
	}
	if h.XMLName.Local != "data_server_request" {
		return nil, nil, fmt.Errorf("not a data_server_request")
	}
	if name := strings.TrimSpace(h.GetFileSize); name != "" {
		return &uploadRequest{GetFileSize: name}, nil, nil
	}
	if h.Upload == nil || !found {
		return nil, nil, fmt.Errorf("upload request without a file_upload and its <data>")
	}
	u := h.Upload
	for _, v := range []float64{u.File.MaxBytes, u.NBytes, u.Offset} {
		if !(v >= 0 && v <= 1<<50) {
			return nil, nil, fmt.Errorf("upload size or offset %v out of range", v)
		}
	}
	return &uploadRequest{
		Name: strings.TrimSpace(u.File.Name), Signature: strings.TrimSpace(u.File.Signature),
		MaxBytes: int64(u.File.MaxBytes), NBytes: int64(u.NBytes), MD5: strings.TrimSpace(u.MD5), Offset: int64(u.Offset),
	}, data, nil
}

// xmlWriter writes BOINC's XML by hand.
type xmlWriter struct{ b bytes.Buffer }

func (w *xmlWriter) open(tag string)  { w.b.WriteString("<" + tag + ">\n") }
func (w *xmlWriter) close(tag string) { w.b.WriteString("</" + tag + ">\n") }
func (w *xmlWriter) flag(tag string)  { w.b.WriteString("    <" + tag + "/>\n") }

func (w *xmlWriter) str(tag, v string) {
	w.b.WriteString("    <" + tag + ">")
	_ = xml.EscapeText(&w.b, []byte(v))
	w.b.WriteString("</" + tag + ">\n")
}

func (w *xmlWriter) num(tag string, v float64) {
	w.b.WriteString("    <" + tag + ">" + strconv.FormatFloat(v, 'f', -1, 64) + "</" + tag + ">\n")
}

func (w *xmlWriter) int(tag string, v int64) {
	w.b.WriteString("    <" + tag + ">" + strconv.FormatInt(v, 10) + "</" + tag + ">\n")
}

// block writes text the client copies raw up to the closing tag (keys,
// signatures).
func (w *xmlWriter) block(tag, text string) {
	w.b.WriteString("<" + tag + ">\n" + text + "</" + tag + ">\n")
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
