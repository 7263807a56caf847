// Package api is the node's HTTP API: the API interface the CLI programs
// against (with Streamer for the live feed, contribution lists, raw records
// and metrics), its request and response types and errors, the HTTP
// handlers (Handler), the client that speaks to a daemon over them
// (Client), the OpenAPI document and the web explorer's files.
//
// *node.Node implements API and Streamer in process; *Client implements
// API over HTTP and maps status codes back to the errors of errors.go, so
// a caller tests either with errors.Is. The package holds no state of its
// own beyond a handler's token and a client's address.
package api
