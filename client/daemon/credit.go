package daemon

import (
	"context"
	"time"

	"github.com/momonga-project/momonga/client/control"
	wu "github.com/momonga-project/momonga/workunits"
)

// The volunteer's credit is the project's to count: the daemon asks each
// project (vol.H.credit) only when a display lists the projects and its
// figures are older than creditFresh, so that a client nobody looks at
// asks nothing.
const creditFresh = time.Minute

// wantCreditLocked asks p's loop for the credit if it is stale.
func (d *Daemon) wantCreditLocked(p *project) {
	now := d.now()
	if !p.connected || now.Sub(p.creditAsked) < creditFresh {
		return
	}
	select {
	case p.creditKick <- struct{}{}:
		p.creditAsked = now
	default:
	}
}

// askCredit asks the project for the host's credit and its volunteer's.
func (d *Daemon) askCredit(ctx context.Context, p *project, c *conn) {
	var rep wu.CreditReply
	err := c.request(ctx, wu.OpCredit, wu.Encode(wu.CreditRequest{V: wu.WireVersion}), &rep, 1)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Debug("credit", "project", p.url, "err", err)
		}
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p.credit = &control.Credit{
		User: rep.User, UserCredit: rep.UserCredit, UserRAC: rep.UserRAC,
		HostCredit: rep.HostCredit, HostRAC: rep.HostRAC, Team: rep.Team, At: d.now(),
	}
	d.changed()
}
