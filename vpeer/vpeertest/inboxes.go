package vpeertest

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/momonga-project/momonga/vpeer"
)

// Inboxes routes members' replies to in-process requesters, as NATS
// inboxes do for a log in JetStream: Reply is a vpeer.MemberConfig.Reply,
// and Requests makes a log whose Request waits for a member's reply.
type Inboxes struct {
	mu    sync.Mutex
	next  int
	boxes map[string]chan []byte
}

// Reply delivers data to the requester waiting on subject; a reply nobody
// waits for (a later member's, or after the requester gave up) is dropped,
// as NATS drops it.
func (b *Inboxes) Reply(subject string, data []byte) error {
	b.mu.Lock()
	c := b.boxes[subject]
	b.mu.Unlock()
	if c != nil {
		select {
		case c <- append([]byte(nil), data...):
		default:
		}
	}
	return nil
}

// open makes an inbox, and close forgets it.
func (b *Inboxes) open() (string, chan []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.boxes == nil {
		b.boxes = make(map[string]chan []byte)
	}
	b.next++
	subject := "_INBOX.test." + strconv.Itoa(b.next)
	c := make(chan []byte, 1)
	b.boxes[subject] = c
	return subject, c
}

func (b *Inboxes) close(subject string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.boxes, subject)
}

// Wait makes an inbox for a request made by other means (a record
// appended by the code under test with this ReplyTo): it returns the
// subject, and a function that waits for the first reply and then forgets
// the inbox.
func (b *Inboxes) Wait() (subject string, wait func(ctx context.Context) ([]byte, error)) {
	subject, c := b.open()
	return subject, func(ctx context.Context) ([]byte, error) {
		defer b.close(subject)
		select {
		case data := <-c:
			return data, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("no reply on %s: %w", subject, ctx.Err())
		}
	}
}

// Requests is a log whose Request appends a record with a fresh inbox and
// waits for a member's reply, like jetlog.Requests.
type Requests struct {
	vpeer.Log
	Inboxes *Inboxes
}

// Request appends r with a new inbox as ReplyTo and returns the first reply.
// A duplicate ID is returned as vpeer.ErrDuplicate at once.
func (q Requests) Request(ctx context.Context, r vpeer.Record) ([]byte, error) {
	subject, wait := q.Inboxes.Wait()
	r.ReplyTo = subject
	if _, err := q.Append(ctx, r); err != nil {
		q.Inboxes.close(subject)
		return nil, err
	}
	return wait(ctx)
}
