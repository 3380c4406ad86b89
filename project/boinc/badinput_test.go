package boinc

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// Bad input from BOINC clients: each is refused with a BOINC-style answer
// (a scheduler_reply with a message and a delay, an upload reply with a
// status and a message) and changes nothing in the scheduler's state.
func TestBadInputChangesNothing(t *testing.T) {
	r := newRig(t, rigConfig{})
	annKey, bobKey := r.user("ann"), r.user("bob")
	r.primes("b1", 1, [2]int{0, 10}, [2]int{10, 20}, [2]int{20, 30})
	ann := &client{auth: annKey, cpid: "ann-host"}
	bob := &client{auth: bobKey, cpid: "bob-host"}
	annRep := r.rpc(ann, true, nil, nil)
	if len(annRep.Results) != 2 {
		t.Fatalf("ann's host wants 2 tasks, got %d", len(annRep.Results))
	}
	annTask := annRep.Results[0]
	var annOut struct {
		sig string
		max int64
	}
	for _, f := range annRep.Files {
		if f.Name == annTask.File {
			annOut.sig, annOut.max = strings.TrimSpace(f.XMLSig), f.MaxBytes
		}
	}
	bobRep := r.rpc(bob, true, nil, nil)
	if len(bobRep.Results) != 1 {
		t.Fatalf("bob's host wants the last task, got %d", len(bobRep.Results))
	}
	bobTask := bobRep.Results[0]
	var bobSig string
	for _, f := range bobRep.Files {
		if f.Name == bobTask.File {
			bobSig = strings.TrimSpace(f.XMLSig)
		}
	}
	before := r.stateOf()

	refusedRPC := func(what, body string, wantMessage string) {
		t.Helper()
		rep := r.post(body)
		if len(rep.Messages) == 0 || !strings.Contains(strings.Join(rep.Messages, " "), wantMessage) || rep.RequestDelay <= 0 {
			t.Errorf("%s: want a message with %q and a delay, got %+v", what, wantMessage, rep)
		}
		if len(rep.Results) > 0 || len(rep.Acks) > 0 || rep.HostID != 0 {
			t.Errorf("%s: the reply gives work, acks or a host: %+v", what, rep)
		}
		if got := r.stateOf(); got != before {
			t.Errorf("%s changed the state:\nbefore %s\nafter  %s", what, before, got)
		}
	}
	refusedRPC("malformed XML", "<scheduler_request><authenticator>"+annKey+"</authenticator><hostid>x1</hostid>", "could not read")
	refusedRPC("not a scheduler request", "<html><body>hello</body></html>", "could not read")
	refusedRPC("oversized request", "<scheduler_request>"+strings.Repeat("<a>x</a>", MaxRequestBytes/8+1)+"</scheduler_request>", "could not read")
	wrong := *ann
	wrong.auth = "not-the-key-of-anybody-at-all"
	refusedRPC("wrong authenticator", wrong.requestXML(true, nil, nil), "Invalid or missing account key")
	wrong.auth = "short"
	refusedRPC("malformed authenticator", wrong.requestXML(true, nil, nil), "Invalid or missing account key")

	refusedUpload := func(what string, rep uploadReply, wantMessage string) {
		t.Helper()
		if rep.Status != -1 || !strings.Contains(rep.Message, wantMessage) {
			t.Errorf("%s: want status -1 and %q, got %+v", what, wantMessage, rep)
		}
		if got := r.stateOf(); got != before {
			t.Errorf("%s changed the state", what)
		}
		if size := r.sizeQuery(annTask.File).FileSize; size != 0 {
			t.Errorf("%s: %d bytes staged", what, size)
		}
	}
	out := []byte("4\n")
	refusedUpload("upload of ann's file with bob's token", r.upload(annTask.File, bobSig, annOut.max, out, 0), "invalid signature")
	refusedUpload("upload with a forged token", r.upload(annTask.File, strings.Replace(annOut.sig, annOut.sig[len(annOut.sig)-4:], "0000", 1), annOut.max, out, 0), "invalid signature")
	refusedUpload("upload with a raised size limit", r.upload(annTask.File, annOut.sig, annOut.max*2, out, 0), "invalid signature")
	refusedUpload("upload over the size limit", r.upload(annTask.File, annOut.sig, annOut.max, bytes.Repeat([]byte("x"), int(annOut.max)+1), 0), "exceeds limit")
	refusedUpload("upload with a wrong md5", r.postUpload([]byte("<data_server_request>\n<file_upload>\n<file_info>\n<name>"+annTask.File+"</name>\n<xml_signature>\n"+annOut.sig+"\n</xml_signature>\n<max_nbytes>"+strconv.FormatInt(annOut.max, 10)+"</max_nbytes>\n</file_info>\n<nbytes>2</nbytes>\n<md5_cksum>00000000000000000000000000000000</md5_cksum>\n<offset>0</offset>\n<data>\n4\n")), "md5")
	refusedUpload("upload without data", r.postUpload([]byte("<data_server_request>\n<file_upload>\n<file_info>\n<name>"+annTask.File+"</name>\n</file_info>\n</file_upload>\n</data_server_request>\n")), "<data>")
	refusedUpload("malformed upload", r.postUpload([]byte("<data_server_request><get_file_size>../../etc/passwd_out</get_file_size></data_server_request>\n")), "invalid file name")
	refusedUpload("oversized upload header", r.postUpload(bytes.Repeat([]byte("<a>\n"), maxUploadHeader)), "header")

	// Bob's host reports a result for ann's task, with an output it uploaded
	// under its own file: refused and acknowledged, so that it is not sent
	// again; ann's task is untouched.
	if u := r.upload(bobTask.File, bobSig, annOut.max, out, 0); u.Status != 0 {
		t.Fatalf("bob's own upload: %+v", u)
	}
	rep := r.rpc(bob, false, []string{reportXML(annTask.Name, 0, out)}, []string{bobTask.Name})
	if len(rep.Acks) != 1 || !strings.Contains(strings.Join(rep.Messages, " "), "not accepted") {
		t.Errorf("result for another host's task: acks %v, messages %v", rep.Acks, rep.Messages)
	}
	if got := r.stateOf(); got != before {
		t.Errorf("a result for another host's task changed the state:\nbefore %s\nafter  %s", before, got)
	}
}

func FuzzDecodeSchedulerRequest(f *testing.F) {
	c := &client{auth: "0123456789abcdef-key", cpid: "x"}
	f.Add([]byte(c.requestXML(true, []string{reportXML("wu1_0", 0, []byte("1\n"))}, []string{"wu2_0"})))
	f.Add([]byte("<scheduler_request><result><name>a</name></result></scheduler_request>"))
	f.Add([]byte("<scheduler_request><hostid>-1</hostid><p_ncpus>99999999999</p_ncpus>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeSchedulerRequest(b)
		if err != nil {
			return
		}
		if len(req.Results) > maxReported || len(req.OtherResults) > maxReported {
			t.Fatalf("%d results accepted", len(req.Results))
		}
		h := describe(req)
		if h.CPUs < 0 || h.CPUs > 4096 || len(h.Name) > 128 || len(h.CPUModel) > 256 || h.MemoryBytes < 0 {
			t.Fatalf("host description out of range: %+v", h)
		}
	})
}

func FuzzDecodeUploadHeader(f *testing.F) {
	f.Add([]byte("<data_server_request>\n<get_file_size>wu1_0_out</get_file_size>\n</data_server_request>\n"))
	f.Add([]byte("<data_server_request>\n<file_upload>\n<file_info>\n<name>wu1_0_out</name>\n<xml_signature>\nh1:00\n</xml_signature>\n<max_nbytes>1024</max_nbytes>\n</file_info>\n<nbytes>2</nbytes>\n<md5_cksum>x</md5_cksum>\n<offset>0</offset>\n<data>\n12"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, _, err := decodeUploadHeader(b)
		if err != nil {
			return
		}
		if req.GetFileSize == "" && (req.NBytes < 0 || req.Offset < 0 || req.MaxBytes < 0) {
			t.Fatalf("negative size accepted: %+v", req)
		}
	})
}
