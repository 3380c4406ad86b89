package gateway

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"math"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	wu "github.com/momonga-project/momonga/workunits"
)

// What the gateway admits (DESIGN §4): each host's requests within its
// rate, attach requests turned into log records without the account key,
// apps signed with the project's key, bodies that decode, and only blobs
// that are stored whole with the size a request says.

// limitKey is whose budget a request is counted against: the host id of
// vol.H.…, the nkey of attach.K.
func limitKey(subject string) string {
	if host, _, ok := wu.ParseVolunteerSubject(subject); ok {
		return host
	}
	if k, ok := strings.CutPrefix(subject, wu.SubjectAttachPrefix); ok {
		return "attach:" + k
	}
	return subject
}

// retrySeconds is when a refused request may come again, rounded up to a
// tenth of a second.
func retrySeconds(d Decision) float64 { return math.Ceil(d.RetryAfter.Seconds()*10) / 10 }

// attach handles attach.<nkey>: the record that reaches the log carries the
// account key's hash, never the key.
func (g *Gateway) attach(ctx context.Context, msg *nats.Msg) {
	nkey := strings.TrimPrefix(msg.Subject, wu.SubjectAttachPrefix)
	req, err := wu.Decode[wu.AttachRequest](msg.Data)
	if err == nil && (req.NKey != nkey || !nkeys.IsValidPublicUserKey(nkey)) {
		err = wu.Errorf(wu.CodeBadRequest, "attach: the request's nkey is not the one in its subject, or not a valid user key")
	}
	if err != nil {
		g.refuse(msg, err)
		return
	}
	body := wu.Attach{V: wu.WireVersion, KeyHash: wu.AccountKeyHash(req.AccountKey), NKey: req.NKey, Host: req.Host}
	g.append(msg, wu.Command{V: wu.WireVersion, Op: wu.OpAttach, Body: wu.Encode(body)})
}

// checkAdmin admits a command of the project's tools.
func (g *Gateway) checkAdmin(ctx context.Context, cmd wu.Command) error {
	var err error
	switch cmd.Op {
	case wu.OpAddApp:
		var r wu.AddApp
		if r, err = wu.DecodeLimit[wu.AddApp](cmd.Body, wu.MaxAdminMessageBytes); err == nil {
			if err = g.checkSignature(r); err == nil {
				err = g.checkApp(ctx, r)
			}
		}
	case wu.OpSubmit:
		var r wu.Submit
		if r, err = wu.DecodeLimit[wu.Submit](cmd.Body, wu.MaxAdminMessageBytes); err == nil {
			for _, u := range r.Units {
				if u.Stdin == "" {
					continue
				}
				if err = g.checkBlob(ctx, u.Stdin, -1, "input"); err != nil {
					break
				}
			}
		}
	case wu.OpUserAdd:
		_, err = wu.DecodeLimit[wu.UserAdd](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpTeamAdd:
		_, err = wu.DecodeLimit[wu.TeamAdd](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpTeamJoin:
		_, err = wu.DecodeLimit[wu.TeamJoin](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpHostRevoke:
		_, err = wu.DecodeLimit[wu.HostRevoke](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpCancel:
		_, err = wu.DecodeLimit[wu.Cancel](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpUserSet:
		var r wu.UserSet
		if r, err = wu.DecodeLimit[wu.UserSet](cmd.Body, wu.MaxAdminMessageBytes); err == nil && r.User == "" {
			err = wu.Errorf(wu.CodeBadRequest, "user.set names no user")
		}
	default:
		err = wu.Errorf(wu.CodeBadRequest, "%q is not an admin operation", cmd.Op)
	}
	return err
}

// checkSignature admits an app only with a manifest signed by the
// project's key for exactly this module.
func (g *Gateway) checkSignature(r wu.AddApp) error {
	if g.cfg.SigningKey == nil {
		return wu.Errorf(wu.CodeConflict, "this project has no signing key: create one with `momonga-project init` and restart the server")
	}
	if r.Signature == "" {
		return wu.Errorf(wu.CodeBadRequest, "app %s is not signed: sign it with `momonga-project app sign --key KEY FILE.wasm`", r.Name)
	}
	sig, err := wu.ParseAppSignature([]byte(r.Signature))
	if err != nil {
		return err
	}
	if err := sig.VerifyFor(g.cfg.SigningKey, r.Hash, r.Size); err != nil {
		return wu.Errorf(wu.CodeBadRequest, "app %s: signature refused: %s", r.Name, err.(*wu.Error).Message)
	}
	return nil
}

// checkApp makes sure an app's module is stored and is a module momonga can
// run, whoever sent the request: the command-line tool checks too, but the
// project must not rely on its tools.
func (g *Gateway) checkApp(ctx context.Context, r wu.AddApp) error {
	if err := g.checkBlob(ctx, r.Hash, r.Size, "app"); err != nil {
		return err
	}
	module, err := g.cfg.Blobs.Get(ctx, r.Hash)
	if err != nil {
		return err
	}
	for _, s := range r.CodeSigs {
		if sum := md5.Sum(module); s.File == wu.CodeSignedModule && s.MD5 != hex.EncodeToString(sum[:]) {
			return wu.Errorf(wu.CodeBadRequest, "app %s: its BOINC code signature is of another file (md5 %s): sign the module being added", r.Name, s.MD5)
		}
	}
	return wu.CheckModule(module)
}

// checkBlob makes sure a blob a request refers to is stored, with the size
// the request says (any size for a negative one).
func (g *Gateway) checkBlob(ctx context.Context, h wu.Hash, size int64, what string) error {
	n, ok, err := g.cfg.Blobs.Size(ctx, h)
	if err != nil {
		return err
	}
	if !ok {
		return wu.Errorf(wu.CodeNotFound, "%s blob %s has not been uploaded", what, h.Short())
	}
	if size >= 0 && n != size {
		return wu.Errorf(wu.CodeBadRequest, "%s blob %s has %d bytes, not %d", what, h.Short(), n, size)
	}
	return nil
}

// checkCheckpoint makes sure that a checkpoint a host reports is stored
// whole (and its base, for a delta) and that its header, under a valid
// checksum, says what the report says: the scheduler records only
// checkpoints another host can resume from.
func (g *Gateway) checkCheckpoint(ctx context.Context, r wu.CheckpointReport) error {
	c := r.Checkpoint
	if err := g.checkBlob(ctx, c.Hash, c.Size, "checkpoint"); err != nil {
		return err
	}
	if c.Base != "" {
		if err := g.checkBlob(ctx, c.Base, c.BaseSize, "checkpoint base"); err != nil {
			return err
		}
	}
	b, err := g.cfg.Blobs.Get(ctx, c.Hash)
	if err != nil {
		return err
	}
	h, _, err := wu.ParseCheckpoint(b)
	if err != nil {
		return err
	}
	return r.Matches(h)
}
