//go:build !windows

package main

import (
	"context"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

// serviceContext is ctx, cancelled when the client is asked to stop.
func serviceContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return cliutil.SignalContext(ctx)
}
