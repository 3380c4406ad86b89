// Package admin is the client side of the project's own tools: publishing
// apps, submitting batches, reading status and results of a running server
// over NATS (the `momonga-project app|submit|status|results` commands).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/momonga-project/momonga/project/blobs"
	wu "github.com/momonga-project/momonga/workunits"
)

// Client talks to one project server.
type Client struct {
	nc      *nats.Conn
	blobs   *blobs.Store
	id      string // requester id for de-duplication of retried commands
	seq     uint64
	Timeout time.Duration // per attempt
	Retries int
}

// Dial connects to the project's NATS server at url. A secured server
// needs the project's credentials among opts (nats.UserCredentials with
// the server's admin.creds), and a TLS listener the CA that signed its
// certificate (nats.RootCAs) unless the system trusts it.
func Dial(ctx context.Context, url string, opts ...nats.Option) (*Client, error) {
	opts = append([]nats.Option{nats.Name("momonga-project admin"), nats.Timeout(5 * time.Second)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("connect to project at %s: %w: give the project's credentials with --creds (the server's DATA/admin.creds)", url, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to project at %s: %w (is `momonga-project serve` running?)", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	store, err := blobs.Bind(ctx, js, blobs.Bucket)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Client{nc: nc, blobs: store, id: "adm:" + nuid.Next(), Timeout: 10 * time.Second, Retries: 3}, nil
}

// Close disconnects.
func (c *Client) Close() { c.nc.Close() }

// PutBlob stores b in the project's blob store.
func (c *Client) PutBlob(ctx context.Context, b []byte) (wu.Hash, error) { return c.blobs.Put(ctx, b) }

// Blob reads a blob.
func (c *Client) Blob(ctx context.Context, h wu.Hash) ([]byte, error) { return c.blobs.Get(ctx, h) }

// AddApp publishes module under name with its signed manifest (see
// workunits.SignApp), validation policy and, for stock BOINC clients, the
// code signatures of its BOINC app versions (boinc.SignApp): it prepares
// the module (a reactor's mutable globals are exported, so that its memory
// snapshots are complete: workunits.PrepareModule), checks it and the
// signature, which covers the prepared module, stores it and records the
// app in the scheduler. The app's hash is that of the prepared module.
func (c *Client) AddApp(ctx context.Context, name string, module, signature []byte, policy wu.Policy, codeSigs ...wu.CodeSignature) (wu.App, error) {
	if !wu.ValidName(name) {
		return wu.App{}, wu.Errorf(wu.CodeBadRequest, "app name %q: use 1-%d letters, digits, '.', '_' or '-'", name, wu.MaxNameBytes)
	}
	module, err := wu.PrepareModule(module)
	if err != nil {
		return wu.App{}, err
	}
	sig, err := wu.ParseAppSignature(signature)
	if err != nil {
		return wu.App{}, err
	}
	if err := sig.Verify(sig.Key, module); err != nil {
		return wu.App{}, fmt.Errorf("signature of %s: %w", name, err)
	}
	h, err := c.PutBlob(ctx, module)
	if err != nil {
		return wu.App{}, err
	}
	req := wu.AddApp{V: wu.WireVersion, Name: name, Hash: h, Size: int64(len(module)), Signature: string(signature), Policy: policy, CodeSigs: codeSigs}
	if err := c.command(ctx, wu.OpAddApp, req, &wu.Ack{}); err != nil {
		return wu.App{}, err
	}
	return wu.App{Name: name, Hash: h, Size: int64(len(module)), Signature: string(signature), Policy: policy}, nil
}

// submitChunk is how many units go in one Submit: one message stays well
// under the admin message limit.
const submitChunk = 1000

// Submit adds s's units to the project, in as many commands as their number
// needs, and returns the ids of the work units created.
func (c *Client) Submit(ctx context.Context, s wu.Submit) ([]string, error) {
	s.V = wu.WireVersion
	var ids []string
	all := s.Units
	for start := 0; start < len(all); start += submitChunk {
		part := s
		part.Units = all[start:min(start+submitChunk, len(all))]
		var rep wu.SubmitReply
		if err := c.command(ctx, wu.OpSubmit, part, &rep); err != nil {
			return ids, err
		}
		ids = append(ids, rep.Units...)
	}
	return ids, nil
}

// Cancel stops the undecided work units of a batch, or the ones named,
// and returns how many it stopped.
func (c *Client) Cancel(ctx context.Context, batch string, units ...string) (int, error) {
	var rep wu.CancelReply
	err := c.command(ctx, wu.OpCancel, wu.Cancel{V: wu.WireVersion, Batch: batch, Units: units}, &rep)
	return rep.Cancelled, err
}

// Status returns the project's state in brief.
func (c *Client) Status(ctx context.Context) (wu.StatusReply, error) {
	var rep wu.StatusReply
	err := c.request(ctx, wu.SubjectAdminStatus, nil, &rep)
	return rep, err
}

// Results returns every work unit of a batch, page by page.
func (c *Client) Results(ctx context.Context, batch string) (wu.ResultsReply, error) {
	var all wu.ResultsReply
	q := wu.ResultsQuery{V: wu.WireVersion, Batch: batch}
	for {
		var rep wu.ResultsReply
		if err := c.request(ctx, wu.SubjectAdminResults, wu.Encode(q), &rep); err != nil {
			return all, err
		}
		units := append(all.Units, rep.Units...)
		all = rep
		all.Units = units
		if rep.Next == 0 {
			return all, nil
		}
		q.Offset = rep.Next
	}
}

// command sends a state-changing command. Retries reuse the sequence number,
// so the scheduler applies the command once however often it is sent.
func (c *Client) command(ctx context.Context, op string, body any, out any) error {
	c.seq++
	cmd := wu.Command{V: wu.WireVersion, Op: op, Host: c.id, Seq: c.seq, Body: wu.Encode(body)}
	return c.request(ctx, wu.SubjectAdminCommand, wu.Encode(cmd), out)
}

func (c *Client) request(ctx context.Context, subject string, data []byte, out any) error {
	var last error
	for attempt := 0; attempt <= c.Retries; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.Timeout)
		msg, err := c.nc.RequestWithContext(actx, subject, data)
		cancel()
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, nats.ErrNoResponders) {
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		var ack wu.Ack
		if err := json.Unmarshal(msg.Data, &ack); err != nil {
			return fmt.Errorf("%s: malformed reply: %w", subject, err)
		}
		if ack.Error != nil {
			return ack.Error
		}
		if err := json.Unmarshal(msg.Data, out); err != nil {
			return fmt.Errorf("%s: malformed reply: %w", subject, err)
		}
		return nil
	}
	return fmt.Errorf("%s: the project did not answer: %w", subject, last)
}

// Export asks the server for its statistics exports now and writes them
// into dir (BOINC's user.gz, team.gz, host.gz and tables.xml), each file
// written beside its place and renamed into it, so that a reader never
// sees half a file.
func (c *Client) Export(ctx context.Context, dir string) ([]wu.ExportFile, error) {
	// An export of a large project takes seconds to write.
	actx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	msg, err := c.nc.RequestWithContext(actx, wu.SubjectAdminExport, nil)
	if err != nil {
		return nil, fmt.Errorf("export: the project did not answer: %w", err)
	}
	var rep wu.ExportReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("export: malformed reply: %w", err)
	}
	if rep.Error != nil {
		return nil, rep.Error
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range rep.Files {
		if !slices.Contains([]string{"user.gz", "team.gz", "host.gz", "tables.xml"}, f.Name) {
			return nil, fmt.Errorf("export: the project named a file %q", f.Name)
		}
		b, err := c.Blob(ctx, f.Hash)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", f.Name, err)
		}
		tmp := filepath.Join(dir, "."+f.Name+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.Name)); err != nil {
			return nil, err
		}
		// The blob was made for this export only.
		_ = c.blobs.Delete(ctx, f.Hash)
	}
	return rep.Files, nil
}
