package jetlog

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/vpeer"
)

// Requests is a log whose records can be requests: Request appends a record
// with a fresh inbox of NC as its ReplyTo and waits for the first member's
// reply there. It is how the project asks a virtual peer something through
// its log (a delivery of credit, an acknowledgement) and learns the answer
// every member computed.
type Requests struct {
	vpeer.Log
	NC *nats.Conn
}

// Request appends r, with ReplyTo set to a new inbox, and returns the first
// reply sent to it. When r's ID was appended already, nothing is appended,
// no member answers again, and Request returns vpeer.ErrDuplicate at once.
func (q Requests) Request(ctx context.Context, r vpeer.Record) ([]byte, error) {
	inbox := q.NC.NewRespInbox()
	sub, err := q.NC.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	r.ReplyTo = inbox
	if _, err := q.Append(ctx, r); err != nil {
		return nil, err
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("no answer from the virtual peer: %w", err)
	}
	return msg.Data, nil
}
