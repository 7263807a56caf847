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
	// ErrForbidden: this node's key lacks the authority the action needs
	// (a review by a non-maintainer, a manifest update by a non-member).
	ErrForbidden = errors.New("api: not authorised")
	// ErrDiskFull: the disk holding the repo has less free space than
	// the node keeps in reserve; nothing was written.
	ErrDiskFull = errors.New("api: disk full")
)
