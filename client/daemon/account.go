package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	wu "github.com/momonga-project/momonga/workunits"
)

// AccountConfig says which project a user's settings go to and what they
// are.
type AccountConfig struct {
	DataDir string
	// URL names the project; "" for the only one the host is attached to.
	URL     string
	Set     wu.UserSet
	Timeout time.Duration
}

// SetAccount changes the settings of the user this host computes for
// (`momonga team join`): the host asks the project itself, with its own
// credentials, whether or not the client runs. It returns the attachment
// the settings went through.
func SetAccount(ctx context.Context, cfg AccountConfig) (Attachment, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	att, err := chooseAttachment(cfg.DataDir, cfg.URL)
	if err != nil {
		return att, err
	}
	if !att.Credentials {
		return att, fmt.Errorf("this host is not attached to %s as a user's: attach it with `momonga attach %s --account-key KEY` first", att.URL, att.URL)
	}
	kp, err := loadOrCreateSeed(cfg.DataDir)
	if err != nil {
		return att, err
	}
	pub, _ := kp.PublicKey()
	opts := []nats.Option{
		nats.Name("momonga account"),
		nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(wu.InboxPrefix(att.Host)),
		nats.Timeout(cfg.Timeout),
		nats.NoReconnect(),
	}
	if att.CA {
		opts = append(opts, nats.RootCAs(caPathFor(cfg.DataDir, att.URL)))
	}
	nc, err := nats.Connect(att.URL, opts...)
	if err != nil {
		return att, fmt.Errorf("connect to project %s: %w", att.URL, err)
	}
	defer nc.Close()
	c := &conn{nc: nc, host: att.Host, attemptTimeout: cfg.Timeout}
	rctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout)
	defer cancel()
	cfg.Set.V = wu.WireVersion
	return att, c.request(rctx, wu.OpAccount, wu.Encode(cfg.Set), &wu.Ack{}, 3)
}

// chooseAttachment finds the attachment to url, or with url "" the only
// one there is.
func chooseAttachment(dir, url string) (Attachment, error) {
	all, err := allAttachments(dir)
	if err != nil {
		return Attachment{}, err
	}
	var urls []string
	for _, a := range all {
		if a.URL == url {
			return a, nil
		}
		urls = append(urls, a.URL)
	}
	switch {
	case len(all) == 0:
		return Attachment{}, errors.New("this host is attached to no project: attach it with `momonga attach URL --account-key KEY` first")
	case url == "" && len(all) == 1:
		return all[0], nil
	case url == "":
		return Attachment{}, fmt.Errorf("this host is attached to %d projects (%v): name one with --project", len(all), urls)
	}
	return Attachment{}, fmt.Errorf("this host is not attached to %s (it is to %v)", url, urls)
}
