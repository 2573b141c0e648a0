// Package errs defines the kinds of failure the gateway reports. Each kind maps to one HTTP
// status code in api/, so a store or a domain package can say "not found" or "invalid" without
// knowing about HTTP.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for callers that must react differently (API status codes, retries).
type Kind int

const (
	KindInternal     Kind = iota // a bug or an unexpected failure; 500
	KindInvalid                  // the input is wrong; 400 / 422
	KindNotFound                 // 404
	KindConflict                 // already exists, or still referenced; 409
	KindUnauthorized             // no or bad credentials; 401
	KindForbidden                // identity known, action not allowed; 403
	KindLocked                   // too many attempts; 429
	KindUnavailable              // a dependency is down; 503
)

// Error is an error with a kind, a stable snake_case code and a message a person can act on.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// E builds an Error. The message may use fmt verbs.
func E(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap attaches a kind and code to a cause.
func Wrap(kind Kind, code string, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of the first *Error in err's chain, or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Is reports whether err carries the given kind.
func Is(err error, kind Kind) bool { return err != nil && KindOf(err) == kind }

// CodeOf returns the code of the first *Error in err's chain, or "internal".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return "internal"
}

// HTTPStatus is the HTTP status code for a kind: the one mapping every HTTP surface uses.
func HTTPStatus(k Kind) int {
	switch k {
	case KindInvalid:
		return 400
	case KindNotFound:
		return 404
	case KindConflict:
		return 409
	case KindUnauthorized:
		return 401
	case KindForbidden:
		return 403
	case KindLocked:
		return 429
	case KindUnavailable:
		return 503
	}
	return 500
}
