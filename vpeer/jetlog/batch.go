package jetlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/momonga-project/momonga/vpeer"
)

// batchFormat is the value of HeaderBatch for the framing below; another
// framing would get another value, so that a member reading one it does
// not know skips the record (as every member of its version does) rather
// than misreading it.
const batchFormat = "1"

// maxBatch bounds the requests of one record as read: far more than any
// gateway groups, far fewer than would make a corrupt count costly.
const maxBatch = 1 << 16

// encodeBatch frames a batch's requests in a record's data: the count, then
// for each its reply subject and its payload, each a length (uvarint) and
// the bytes.
func encodeBatch(b []vpeer.Request) []byte {
	n := binary.MaxVarintLen64
	for _, q := range b {
		n += 2*binary.MaxVarintLen64 + len(q.ReplyTo) + len(q.Payload)
	}
	out := make([]byte, 0, n)
	out = binary.AppendUvarint(out, uint64(len(b)))
	for _, q := range b {
		out = binary.AppendUvarint(out, uint64(len(q.ReplyTo)))
		out = append(out, q.ReplyTo...)
		out = binary.AppendUvarint(out, uint64(len(q.Payload)))
		out = append(out, q.Payload...)
	}
	return out
}

var errBatchShort = errors.New("batch: truncated")

// decodeBatch reads what encodeBatch wrote. The payloads share data's
// memory.
func decodeBatch(data []byte) ([]vpeer.Request, error) {
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, errBatchShort
		}
		b := data[k : k+int(n)]
		data = data[k+int(n):]
		return b, nil
	}
	count, k := binary.Uvarint(data)
	if k <= 0 {
		return nil, errBatchShort
	}
	data = data[k:]
	// Each request takes at least two bytes: a count beyond that is a lie.
	if count == 0 || count > maxBatch || count > uint64(len(data)/2) {
		return nil, fmt.Errorf("batch: %d requests in %d bytes", count, len(data))
	}
	b := make([]vpeer.Request, count)
	for i := range b {
		reply, err := next()
		if err != nil {
			return nil, err
		}
		payload, err := next()
		if err != nil {
			return nil, err
		}
		b[i] = vpeer.Request{ReplyTo: string(reply), Payload: payload}
	}
	if len(data) > 0 {
		return nil, fmt.Errorf("batch: %d bytes after the last request", len(data))
	}
	return b, nil
}
