package blobs

import (
	"context"
	"fmt"
)

// Bytes is how much the store holds, as JetStream counts it (chunks and
// their metadata, after compression): the operator's metric of its size.
func (s *Store) Bytes(ctx context.Context) (uint64, error) {
	st, err := s.obs.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("blob store status: %w", err)
	}
	return st.Size(), nil
}
