package server

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	wu "github.com/momonga-project/momonga/workunits"
)

// The gateway's part in trust (DESIGN §4): it limits each host's request
// rate, turns attach requests into log records without the account key,
// and admits only apps signed with the project's key.

// limited refuses a volunteer's request over its host's rate before it
// costs anything else; refuse answers in the subject's reply format. Once a
// host is flooding it is reported to onFlood and gets no more answers.
func (g *gateway) limited(next nats.MsgHandler, refuse func(*nats.Msg, error)) nats.MsgHandler {
	if g.limiter == nil {
		return next
	}
	return func(msg *nats.Msg) {
		key := limitKey(msg.Subject)
		d := g.limiter.Allow(key)
		switch {
		case d.Allowed:
			next(msg)
		case d.Flooding:
			g.logger.Warn("host floods the gateway", "host", key)
			if g.onFlood != nil {
				g.onFlood(key)
			}
		case !d.Silent:
			refuse(msg, wu.Errorf(wu.CodeRateLimited, "too many requests from %s: retry in %.1f s", key, math.Ceil(d.RetryAfter.Seconds()*10)/10))
		}
	}
}

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

// attach handles attach.<nkey>: the record that reaches the log carries the
// account key's hash, never the key.
func (g *gateway) attach(ctx context.Context, msg *nats.Msg) {
	nkey := strings.TrimPrefix(msg.Subject, wu.SubjectAttachPrefix)
	req, err := wu.Decode[wu.AttachRequest](msg.Data)
	if err == nil && (req.NKey != nkey || !nkeys.IsValidPublicUserKey(nkey)) {
		err = wu.Errorf(wu.CodeBadRequest, "attach: the request's nkey is not the one in its subject, or not a valid user key")
	}
	if err != nil {
		respondError(msg, err)
		return
	}
	body := wu.Attach{V: wu.WireVersion, KeyHash: wu.AccountKeyHash(req.AccountKey), NKey: req.NKey, Host: req.Host}
	g.append(ctx, msg, wu.Command{V: wu.WireVersion, Op: wu.OpAttach, Body: wu.Encode(body)})
}

// checkSignature admits an app only with a manifest signed by the
// project's key for exactly this module.
func (g *gateway) checkSignature(r wu.AddApp) error {
	if g.signingKey == nil {
		return wu.Errorf(wu.CodeConflict, "this project has no signing key: create one with `momonga-project init` and restart the server")
	}
	if r.Signature == "" {
		return wu.Errorf(wu.CodeBadRequest, "app %s is not signed: sign it with `momonga-project app sign --key KEY FILE.wasm`", r.Name)
	}
	sig, err := wu.ParseAppSignature([]byte(r.Signature))
	if err != nil {
		return err
	}
	if err := sig.VerifyFor(g.signingKey, r.Hash, r.Size); err != nil {
		return wu.Errorf(wu.CodeBadRequest, "app %s: signature refused: %s", r.Name, err.(*wu.Error).Message)
	}
	return nil
}

// checkAccountCommand admits the admin operations on accounts.
func checkAccountCommand(cmd wu.Command) error {
	var err error
	switch cmd.Op {
	case wu.OpUserAdd:
		_, err = wu.DecodeLimit[wu.UserAdd](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpTeamAdd:
		_, err = wu.DecodeLimit[wu.TeamAdd](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpTeamJoin:
		_, err = wu.DecodeLimit[wu.TeamJoin](cmd.Body, wu.MaxAdminMessageBytes)
	case wu.OpHostRevoke:
		_, err = wu.DecodeLimit[wu.HostRevoke](cmd.Body, wu.MaxAdminMessageBytes)
	default:
		err = wu.Errorf(wu.CodeBadRequest, "%q is not an admin operation", cmd.Op)
	}
	return err
}

func (g *gateway) adminAccounts(_ context.Context, msg *nats.Msg) {
	if g.accounts == nil {
		respondError(msg, fmt.Errorf("accounts are not available"))
		return
	}
	_ = msg.Respond(wu.Encode(g.accounts()))
}
