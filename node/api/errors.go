package api

import "errors"

// Errors of the API, returned by the node and by Client (which maps HTTP
// status codes back to them); test with errors.Is.
var (
	// ErrClosed: the node is not running.
	ErrClosed = errors.New("api: closed")
	// ErrUnknownCommons: this node does not replicate the commons, or does
	// not have its genesis manifest yet.
	ErrUnknownCommons = errors.New("api: unknown commons")
	// ErrNotFound: no such record or blob here.
	ErrNotFound = errors.New("api: not found")
	// ErrBadRequest: the request's parameters are invalid; the message says
	// which.
	ErrBadRequest = errors.New("api: bad request")
	// ErrForbidden: the commons' rules refuse the action: this node's key
	// lacks the authority it needs (a review by a non-maintainer, a
	// manifest update by a non-member), or what it would publish would have
	// no effect (the commons would hold it inert); the message says which.
	ErrForbidden = errors.New("api: refused")
	// ErrDiskFull: the disk holding the repo has less free space than
	// the node keeps in reserve; nothing was written.
	ErrDiskFull = errors.New("api: disk full")
)
