package workunits

import (
	"errors"
	"fmt"
)

// Error codes carried in replies. They are part of the wire contract.
const (
	CodeBadRequest  = "bad_request"  // the message could not be decoded or is out of range
	CodeNotFound    = "not_found"    // an app, batch, task or blob that does not exist
	CodeConflict    = "conflict"     // the request contradicts the current state
	CodeNotAssigned = "not_assigned" // a report about a task this host does not hold
	CodeTooLarge    = "too_large"    // a message or blob over its limit
	CodeInternal    = "internal"     // the project failed; retry later
	CodeRateLimited = "rate_limited" // too many requests; retry later
	// CodeUnavailable: the project could not record the request (its log
	// did not answer in time, as while a cluster elects a leader); it may
	// still have been recorded. Send the same request, with the same
	// sequence number, again later: it is applied once.
	CodeUnavailable = "unavailable"
)

// Error is an error with a machine-readable code and a sentence a person can
// act on. It travels inside replies.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf makes an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is, or wraps, an *Error, and
// CodeInternal otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
