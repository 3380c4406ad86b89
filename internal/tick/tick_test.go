package tick

import (
	"context"
	"testing"
	"time"
)

func TestEveryRunsOnPromptAndStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{})
	calls := make(chan struct{})
	done := make(chan struct{})
	go func() {
		Every(ctx, time.Hour, wake, func() { calls <- struct{}{} })
		close(done)
	}()
	for range 3 {
		wake <- struct{}{}
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatal("a prompt did not call fn")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return once its context ended")
	}
}

func TestEveryRunsOnTheTick(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		Every(ctx, time.Millisecond, nil, func() {
			select {
			case calls <- struct{}{}:
			default:
			}
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	for range 2 {
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatal("no call on the tick with no prompt")
		}
	}
}
