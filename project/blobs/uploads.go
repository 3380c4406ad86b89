package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	wu "github.com/momonga-project/momonga/workunits"
)

// UploadsStream is the stream chunked uploads are staged in until they are
// whole.
const UploadsStream = "UPLOADS"

// uploadMaxAge is how long an unfinished upload's chunks are kept.
const uploadMaxAge = 24 * time.Hour

// Headers of a staged chunk.
const (
	chunkSize   = "Momonga-Upload-Size"
	chunkOffset = "Momonga-Upload-Offset"
)

// Uploads assembles chunked uploads in a JetStream stream, one subject per
// uploader and blob, and stores each blob in the Store once it is whole and
// its hash checks out. Because the chunks live in JetStream and not in the
// process that received them, successive chunks of one upload may reach
// different gateways of a cluster (their queue group spreads requests), and
// an upload survives the restart of the one that took its first chunks.
type Uploads struct {
	store    *Store
	stream   jetstream.Stream
	js       jetstream.JetStream
	maxBytes int64
}

// OpenUploads creates (or opens) the staging stream with the given
// replication and returns the Uploads that feed store, accepting blobs of
// up to maxBytes.
func OpenUploads(ctx context.Context, js jetstream.JetStream, store *Store, replicas int, maxBytes int64) (*Uploads, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        UploadsStream,
		Description: "momonga uploads in progress, by uploader and sha-256",
		Subjects:    []string{"upload.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		MaxAge:      uploadMaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("open upload stream: %w", err)
	}
	return &Uploads{store: store, stream: st, js: js, maxBytes: maxBytes}, nil
}

// Chunk takes the chunk at offset of the blob want of the given size from
// uploader. It returns how many bytes of the blob the project now holds (the
// whole size once stored): an uploader that lost track resumes from there.
func (u *Uploads) Chunk(ctx context.Context, uploader string, want wu.Hash, size, offset int64, data []byte) (int64, error) {
	if err := checkUpload(uploader, want, size, u.maxBytes); err != nil {
		return 0, err
	}
	if n, ok, err := u.store.look(ctx, want); err != nil {
		return 0, err
	} else if ok {
		return storedAs(want, n, size)
	}
	subject := "upload." + uploader + "." + string(want)
	last, done, err := u.progress(ctx, subject, size)
	if err != nil {
		return 0, err
	}
	if done == size {
		// Every chunk is staged, but the blob is not stored yet: the
		// gateway that took the last chunk is still storing it, or failed
		// to. Store it here (putStaged does nothing if it is there by then),
		// so that size is answered only once the blob is stored.
		return u.finish(ctx, subject, want, size)
	}
	if offset != done {
		return done, nil
	}
	if done+int64(len(data)) > size {
		u.drop(ctx, subject)
		return 0, errPastSize(size)
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set(chunkSize, strconv.FormatInt(size, 10))
	msg.Header.Set(chunkOffset, strconv.FormatInt(offset, 10))
	msg.Data = data
	if _, err := u.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last)); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			// The same chunk, retried, reached another gateway first:
			// tell the uploader where the upload stands now.
			_, done, err := u.progress(ctx, subject, size)
			return done, err
		}
		return 0, fmt.Errorf("stage upload of %s: %w", want.Short(), err)
	}
	done += int64(len(data))
	if done < size {
		return done, nil
	}
	return u.finish(ctx, subject, want, size)
}

// finish stores the blob whose chunks are all staged on subject and drops
// them. A failure to store that may pass (a time-out, a server away) keeps
// them, so that the uploader's next try stores the blob without sending it
// again; staged content that is not the blob is dropped, to start again.
func (u *Uploads) finish(ctx context.Context, subject string, want wu.Hash, size int64) (int64, error) {
	err := u.store.putStaged(ctx, want, func(w io.Writer) error { return u.read(ctx, subject, size, w) })
	if err == nil || wu.ErrorCode(err) == wu.CodeBadRequest {
		u.drop(ctx, subject)
	}
	if err != nil {
		return 0, err
	}
	return size, nil
}

// progress reads the newest chunk staged on subject: its stream sequence
// and the bytes staged up to its end. An upload staged with another size
// is dropped, to start again.
func (u *Uploads) progress(ctx context.Context, subject string, size int64) (last uint64, done int64, err error) {
	m, err := u.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read upload progress: %w", err)
	}
	sz, err1 := strconv.ParseInt(m.Header.Get(chunkSize), 10, 64)
	off, err2 := strconv.ParseInt(m.Header.Get(chunkOffset), 10, 64)
	if err1 != nil || err2 != nil || sz != size {
		u.drop(ctx, subject)
		m, err = u.stream.GetLastMsgForSubject(ctx, subject)
		if err == nil {
			return m.Sequence, 0, nil // dropped: the next chunk must follow this one
		}
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, 0, nil
		}
		return 0, 0, fmt.Errorf("read upload progress: %w", err)
	}
	return m.Sequence, off + int64(len(m.Data)), nil
}

// read writes the staged chunks of subject to w in order, checking that
// they follow each other without a gap up to size.
func (u *Uploads) read(ctx context.Context, subject string, size int64, w io.Writer) error {
	var done int64
	for seq := uint64(1); done < size; {
		m, err := u.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return fmt.Errorf("read staged upload at %d of %d bytes: %w", done, size, err)
		}
		off, err := strconv.ParseInt(m.Header.Get(chunkOffset), 10, 64)
		if err != nil || off != done {
			return wu.Errorf(wu.CodeBadRequest, "staged upload has a gap at %d of %d bytes; upload it again", done, size)
		}
		if _, err := w.Write(m.Data); err != nil {
			return err
		}
		done += int64(len(m.Data))
		seq = m.Sequence + 1
	}
	return nil
}

// drop removes subject's staged chunks.
func (u *Uploads) drop(ctx context.Context, subject string) {
	_ = u.stream.Purge(context.WithoutCancel(ctx), jetstream.WithPurgeSubject(subject))
}

// putStaged stores the blob that emit writes under want, after a first
// pass of emit has shown that it hashes to want.
func (s *Store) putStaged(ctx context.Context, want wu.Hash, emit func(io.Writer) error) error {
	sum := sha256.New()
	if err := emit(sum); err != nil {
		return err
	}
	if got := wu.Hash(hex.EncodeToString(sum.Sum(nil))); got != want {
		return errHashMismatch(got, want)
	}
	// Stored already, perhaps by another gateway finishing the same upload
	// or another host's upload of the same output: putOnce does nothing.
	err := s.putOnce(ctx, want, func(ctx context.Context) error {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(emit(pw)) }()
		_, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: string(want)}, pr)
		pr.CloseWithError(err)
		return err
	})
	if err != nil {
		return fmt.Errorf("put blob %s: %w", want.Short(), err)
	}
	return nil
}
