package jetlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
)

// Metadata of a snapshot object, beside its name (the sequence number,
// zero-padded so that names sort like numbers).
const (
	metaTime   = "vpeer-time" // unix nanoseconds; absent for the zero time
	metaHash   = "vpeer-hash"
	metaStored = "vpeer-stored" // unix nanoseconds
)

// Snapshots is a vpeer.SnapshotStore in a JetStream object store bucket,
// one zstd-compressed object per snapshot. Damage is found three times over
// on read: the object store checks each object's SHA-256 digest, zstd its
// frame checksums, and the member the checksum inside the snapshot.
type Snapshots struct {
	os     jetstream.ObjectStore
	bucket string
}

var _ vpeer.SnapshotStore = (*Snapshots)(nil)

// OpenSnapshots creates the object store bucket, or updates it to
// replicas, and returns the snapshot store kept in it.
func OpenSnapshots(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Snapshots, error) {
	os, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "virtual peer snapshots",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("jetlog: open snapshot store %s: %w", bucket, err)
	}
	return &Snapshots{os: os, bucket: bucket}, nil
}

// BindSnapshots returns the snapshot store kept in an existing bucket.
func BindSnapshots(ctx context.Context, js jetstream.JetStream, bucket string) (*Snapshots, error) {
	os, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("jetlog: find snapshot store %s: %w", bucket, err)
	}
	return &Snapshots{os: os, bucket: bucket}, nil
}

func objectName(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// Put implements vpeer.SnapshotStore.
func (s *Snapshots) Put(ctx context.Context, info vpeer.SnapshotInfo, data io.Reader) error {
	meta := map[string]string{
		metaHash:   info.Hash,
		metaStored: strconv.FormatInt(info.Stored.UnixNano(), 10),
	}
	if !info.Time.IsZero() {
		meta[metaTime] = strconv.FormatInt(info.Time.UnixNano(), 10)
	}
	pr, pw := io.Pipe()
	go func() {
		// The fastest level compresses a scheduler's snapshot about tenfold
		// at hundreds of megabytes a second; the store is the slower part.
		enc, err := zstd.NewWriter(pw, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err == nil {
			if _, err = io.Copy(enc, data); err != nil {
				enc.Close()
			} else {
				err = enc.Close()
			}
		}
		pw.CloseWithError(err)
	}()
	_, err := s.os.Put(ctx, jetstream.ObjectMeta{Name: objectName(info.Seq), Metadata: meta}, pr)
	// Stops the compressing goroutine if Put gave up early.
	pr.CloseWithError(errors.New("put ended"))
	if err != nil {
		return fmt.Errorf("jetlog: store snapshot %d in %s: %w", info.Seq, s.bucket, err)
	}
	return nil
}

// List implements vpeer.SnapshotStore. Objects that are not snapshots are
// left out.
func (s *Snapshots) List(ctx context.Context) ([]vpeer.SnapshotInfo, error) {
	objs, err := s.os.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jetlog: list snapshots in %s: %w", s.bucket, err)
	}
	var infos []vpeer.SnapshotInfo
	for _, o := range objs {
		seq, err := strconv.ParseUint(o.Name, 10, 64)
		if err != nil || o.Name != objectName(seq) {
			continue
		}
		info := vpeer.SnapshotInfo{Seq: seq, Hash: o.Metadata[metaHash], Size: int64(o.Size)}
		if ns, err := strconv.ParseInt(o.Metadata[metaTime], 10, 64); err == nil {
			info.Time = time.Unix(0, ns).UTC()
		}
		if ns, err := strconv.ParseInt(o.Metadata[metaStored], 10, 64); err == nil {
			info.Stored = time.Unix(0, ns).UTC()
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b vpeer.SnapshotInfo) int { return cmp.Compare(a.Seq, b.Seq) })
	return infos, nil
}

// Open implements vpeer.SnapshotStore. Reading the object fails at its end
// if its content does not match the digest it was stored with.
func (s *Snapshots) Open(ctx context.Context, seq uint64) (io.ReadCloser, error) {
	r, err := s.os.Get(ctx, objectName(seq))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("snapshot %d in %s: %w", seq, s.bucket, vpeer.ErrNoSnapshot)
	}
	if err != nil {
		return nil, fmt.Errorf("jetlog: open snapshot %d in %s: %w", seq, s.bucket, err)
	}
	dec, err := zstd.NewReader(r)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("jetlog: open snapshot %d in %s: %w", seq, s.bucket, err)
	}
	return decompressed{dec, r}, nil
}

// decompressed reads a snapshot object through its zstd decoder.
type decompressed struct {
	*zstd.Decoder
	obj io.Closer
}

func (d decompressed) Close() error {
	d.Decoder.Close()
	return d.obj.Close()
}

// Delete implements vpeer.SnapshotStore.
func (s *Snapshots) Delete(ctx context.Context, seq uint64) error {
	err := s.os.Delete(ctx, objectName(seq))
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("jetlog: delete snapshot %d in %s: %w", seq, s.bucket, err)
	}
	return nil
}
