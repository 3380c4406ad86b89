package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	wu "github.com/momonga-project/momonga/workunits"
)

// NewAccountKey makes up an account key: 128 random bits in hex.
func NewAccountKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// AddUser creates a user with a new account key and returns the key, which
// only the caller ever sees: the project keeps its hash.
func (c *Client) AddUser(ctx context.Context, name, email, team string) (id, key string, err error) {
	return c.CreateUser(ctx, wu.UserAdd{Name: name, Email: email, Team: team})
}

// CreateUser creates the user u describes with a new account key and a
// new cross-project id (the random part of BOINC's cpid, drawn here so
// that the project's state machine draws nothing), and returns the key.
func (c *Client) CreateUser(ctx context.Context, u wu.UserAdd) (id, key string, err error) {
	if key, err = NewAccountKey(); err != nil {
		return "", "", err
	}
	if u.CrossProjectID, err = NewAccountKey(); err != nil {
		return "", "", err
	}
	u.V, u.KeyHash = wu.WireVersion, wu.AccountKeyHash(key)
	var rep wu.CreatedReply
	err = c.command(ctx, wu.OpUserAdd, u, &rep)
	return rep.ID, key, err
}

// AddTeam creates a team; founder, when not "", is a user who joins it.
func (c *Client) AddTeam(ctx context.Context, name, founder string) (string, error) {
	return c.CreateTeam(ctx, wu.TeamAdd{Name: name, Founder: founder})
}

// CreateTeam creates the team t describes.
func (c *Client) CreateTeam(ctx context.Context, t wu.TeamAdd) (string, error) {
	t.V = wu.WireVersion
	var rep wu.CreatedReply
	err := c.command(ctx, wu.OpTeamAdd, t, &rep)
	return rep.ID, err
}

// SetUser changes a user's settings (u names the user).
func (c *Client) SetUser(ctx context.Context, u wu.UserSet) error {
	u.V = wu.WireVersion
	return c.command(ctx, wu.OpUserSet, u, &wu.Ack{})
}

// JoinTeam moves a user into a team, or out of any with team "".
func (c *Client) JoinTeam(ctx context.Context, user, team string) error {
	return c.command(ctx, wu.OpTeamJoin, wu.TeamJoin{V: wu.WireVersion, User: user, Team: team}, &wu.Ack{})
}

// RevokeHost withdraws a host's credentials.
func (c *Client) RevokeHost(ctx context.Context, host string) error {
	return c.command(ctx, wu.OpHostRevoke, wu.HostRevoke{V: wu.WireVersion, Host: host}, &wu.Ack{})
}

// Accounts lists users, with their e-mail addresses, and teams.
func (c *Client) Accounts(ctx context.Context) (wu.AccountsReply, error) {
	var rep wu.AccountsReply
	err := c.request(ctx, wu.SubjectAdminAccounts, nil, &rep)
	return rep, err
}
