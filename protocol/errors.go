package protocol

import (
	"errors"
	"fmt"
)

// Reasons a record is invalid. Validation errors wrap one of these, usually
// inside a *FieldError that names the offending field; test with errors.Is.
var (
	// ErrTooLarge: the encoded record exceeds MaxRecordSize, or a field
	// exceeds its limit.
	ErrTooLarge = errors.New("protocol: too large")
	// ErrMalformed: the bytes are not a DAG-CBOR record of the expected shape.
	ErrMalformed = errors.New("protocol: malformed")
	// ErrNonCanonical: the bytes decode but do not re-encode to themselves.
	ErrNonCanonical = errors.New("protocol: not canonical DAG-CBOR")
	// ErrUnknownType: the type field names no known record type.
	ErrUnknownType = errors.New("protocol: unknown record type")
	// ErrMissing: a required field is absent or empty.
	ErrMissing = errors.New("protocol: required field missing")
	// ErrInvalid: a field's value is outside what the spec allows.
	ErrInvalid = errors.New("protocol: invalid value")
	// ErrBadSignature: a signature does not verify under ZIP-215.
	ErrBadSignature = errors.New("protocol: bad signature")
	// ErrFutureTime: the record's time is too far ahead of the caller's
	// clock. Unlike the others this is not permanent: the record may become
	// valid later, so callers must delay it, never reject it for good.
	ErrFutureTime = errors.New("protocol: time too far in the future")
)

// FieldError names the field that failed validation.
type FieldError struct {
	Field string // dotted path, e.g. "body.title"
	Err   error  // one of the Err* sentinels, possibly wrapped
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, sentinel error, format string, args ...any) error {
	if format == "" {
		return &FieldError{Field: field, Err: sentinel}
	}
	return &FieldError{Field: field, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// Permanent reports whether err means the record is invalid for every node
// forever (reject, penalise the sender), as opposed to invalid only for now
// (ErrFutureTime, ErrNoGenesis: ignore, retry later).
func Permanent(err error) bool {
	return err != nil && !errors.Is(err, ErrFutureTime) && !errors.Is(err, ErrNoGenesis)
}

// errorCodes name the sentinels above, for carrying them across a wire
// (the HTTP API's error bodies).
var errorCodes = []struct {
	code string
	err  error
}{
	{"too_large", ErrTooLarge},
	{"malformed", ErrMalformed},
	{"non_canonical", ErrNonCanonical},
	{"unknown_type", ErrUnknownType},
	{"missing", ErrMissing},
	{"invalid", ErrInvalid},
	{"bad_signature", ErrBadSignature},
	{"future_time", ErrFutureTime},
	{"wrong_commons", ErrWrongCommons},
	{"no_work", ErrNoWork},
	{"no_genesis", ErrNoGenesis},
}

// ErrorCode returns the code of the sentinel err wraps ("future_time" for
// ErrFutureTime, and so on), or "" if it wraps none. ErrorOf reverses it.
func ErrorCode(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// ErrorOf returns the sentinel named by code, or nil for an unknown code.
func ErrorOf(code string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}
