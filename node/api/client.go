package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/commons-p2p/commons/protocol"
)

// Client talks to a running daemon's HTTP API. It implements API.
type Client struct {
	base  string // http://host:port
	token string
	http  *http.Client
}

var _ API = (*Client)(nil)

// NewClient returns a client for the API at addr (host:port).
func NewClient(addr, token string) *Client {
	return &Client{base: "http://" + addr, token: token, http: &http.Client{}}
}

// Ping reports whether the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := c.ID(ctx)
	return err
}

// Metrics returns the daemon's Prometheus metrics, in the text format.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/metrics")
}

// do sends a request and decodes a JSON answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	resp, err := c.send(ctx, method, path, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("daemon API %s %s: bad response: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful response; an error status
// becomes an error wrapping the matching sentinel.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("daemon API: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method != http.MethodGet {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon API at %s: %w", c.base, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	re := &remoteError{sentinel: sentinelFor(resp.StatusCode), msg: e.Error}
	if cause := protocol.ErrorOf(e.Reason); cause != nil {
		re.cause = cause
		if e.Field != "" {
			re.cause = &protocol.FieldError{Field: e.Field, Err: cause}
		}
	}
	return nil, re
}

// remoteError is an error reported by the daemon: the API error its status
// means and, for a record refused by validation, the protocol error.
type remoteError struct {
	sentinel error
	cause    error // nil, a protocol sentinel, or a *protocol.FieldError
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}

func sentinelFor(code int) error {
	switch code {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusServiceUnavailable:
		return ErrClosed
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusInsufficientStorage:
		return ErrDiskFull
	}
	return errors.New("daemon error")
}

// ErrUnauthorized: the API token was missing or wrong.
var ErrUnauthorized = errors.New("api: unauthorised")

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("daemon API: encode request: %w", err)
	}
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json", out)
}

func (c *Client) created(ctx context.Context, path string, in any) (string, error) {
	var out CIDResponse
	err := c.postJSON(ctx, path, in, &out)
	return out.CID, err
}

// ID implements API.
func (c *Client) ID(ctx context.Context) (IDInfo, error) {
	var v IDInfo
	return v, c.do(ctx, http.MethodGet, "/api/v1/id", nil, "", &v)
}

// Status implements API.
func (c *Client) Status(ctx context.Context) (StatusInfo, error) {
	var v StatusInfo
	return v, c.do(ctx, http.MethodGet, "/api/v1/status", nil, "", &v)
}

// Peers implements API.
func (c *Client) Peers(ctx context.Context) ([]PeerInfo, error) {
	var v []PeerInfo
	return v, c.do(ctx, http.MethodGet, "/api/v1/peers", nil, "", &v)
}

// CreateManifest implements API.
func (c *Client) CreateManifest(ctx context.Context, p ManifestParams) (string, error) {
	return c.created(ctx, "/api/v1/manifests", p)
}

// UpdateManifest implements API.
func (c *Client) UpdateManifest(ctx context.Context, commons string, p ManifestParams) (Published, error) {
	var out Published
	err := c.postJSON(ctx, "/api/v1/commons/"+url.PathEscape(commons)+"/manifest", p, &out)
	return out, err
}

// DraftManifest implements API.
func (c *Client) DraftManifest(ctx context.Context, commons string, p ManifestParams) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("daemon API: encode request: %w", err)
	}
	path := "/api/v1/commons/" + url.PathEscape(commons) + "/manifest/draft"
	if commons == "" {
		path = "/api/v1/manifests/draft"
	}
	return c.bytes(ctx, path, bytes.NewReader(b), "application/json")
}

// CosignManifest implements API.
func (c *Client) CosignManifest(ctx context.Context, draft []byte, force bool) ([]byte, error) {
	return c.bytes(ctx, "/api/v1/manifests/cosign"+forceQuery(force), bytes.NewReader(draft), draftType(draft))
}

// Publish implements API.
func (c *Client) Publish(ctx context.Context, record []byte, force bool) (Published, error) {
	var out Published
	err := c.do(ctx, http.MethodPost, "/api/v1/records"+forceQuery(force), bytes.NewReader(record), draftType(record), &out)
	return out, err
}

func forceQuery(force bool) string {
	if force {
		return "?force=true"
	}
	return ""
}

// bytes posts a body and returns the raw response body.
func (c *Client) bytes(ctx context.Context, path string, body io.Reader, contentType string) ([]byte, error) {
	return c.raw(ctx, http.MethodPost, path, body, contentType)
}

// get returns the raw body of a GET of path, at most MaxDraftSize bytes.
func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	return c.raw(ctx, http.MethodGet, path, nil, "")
}

// raw sends a request and returns the raw response body, at most
// MaxDraftSize bytes.
func (c *Client) raw(ctx context.Context, method, path string, body io.Reader, contentType string) ([]byte, error) {
	resp, err := c.send(ctx, method, path, body, contentType)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxDraftSize+1))
	if err != nil {
		return nil, fmt.Errorf("api: reading the answer to %s: %w", path, err)
	}
	if len(raw) > MaxDraftSize {
		return nil, fmt.Errorf("api: the answer to %s is larger than %d bytes", path, MaxDraftSize)
	}
	return raw, nil
}

// Manifest implements API.
func (c *Client) Manifest(ctx context.Context, commons string) (ManifestInfo, error) {
	var v ManifestInfo
	return v, c.do(ctx, http.MethodGet, "/api/v1/commons/"+url.PathEscape(commons)+"/manifest", nil, "", &v)
}

// Join implements API.
func (c *Client) Join(ctx context.Context, commons string) error {
	return c.do(ctx, http.MethodPut, "/api/v1/commons/"+url.PathEscape(commons), nil, "", nil)
}

// Leave implements API.
func (c *Client) Leave(ctx context.Context, commons string, purge bool) (LeaveReport, error) {
	var v LeaveReport
	path := "/api/v1/commons/" + url.PathEscape(commons)
	if purge {
		path += "?purge=true"
	}
	return v, c.do(ctx, http.MethodDelete, path, nil, "", &v)
}

// PutBlob implements API.
func (c *Client) PutBlob(ctx context.Context, data []byte) (string, error) {
	var out CIDResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/blobs", bytes.NewReader(data), "application/octet-stream", &out)
	return out.CID, err
}

// GetBlob implements API.
func (c *Client) GetBlob(ctx context.Context, id string) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/blobs/"+url.PathEscape(id), nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Contribute implements API.
func (c *Client) Contribute(ctx context.Context, p ContributeParams) (string, error) {
	return c.created(ctx, "/api/v1/contributions", p)
}

// Review implements API.
func (c *Client) Review(ctx context.Context, p ReviewParams) (Published, error) {
	var out Published
	err := c.postJSON(ctx, "/api/v1/reviews", p, &out)
	return out, err
}

// Sponsor implements API.
func (c *Client) Sponsor(ctx context.Context, p SponsorParams) (Published, error) {
	var out Published
	err := c.postJSON(ctx, "/api/v1/sponsorships", p, &out)
	return out, err
}

// SetProfile implements API.
func (c *Client) SetProfile(ctx context.Context, p ProfileParams) (Published, error) {
	var out Published
	err := c.postJSON(ctx, "/api/v1/profiles", p, &out)
	return out, err
}

// Profile implements API; key "" is the node's own.
func (c *Client) Profile(ctx context.Context, commons, key string) (ProfileInfo, error) {
	var v ProfileInfo
	if key == "" {
		id, err := c.ID(ctx)
		if err != nil {
			return v, err
		}
		key = id.PeerID
	}
	return v, c.do(ctx, http.MethodGet, "/api/v1/commons/"+url.PathEscape(commons)+"/profiles/"+url.PathEscape(key), nil, "", &v)
}

// Pledge implements API.
func (c *Client) Pledge(ctx context.Context, p PledgeParams) (Published, error) {
	var out Published
	err := c.postJSON(ctx, "/api/v1/pledges", p, &out)
	return out, err
}

// Acknowledge implements API.
func (c *Client) Acknowledge(ctx context.Context, p AckParams) (Published, error) {
	var out Published
	err := c.postJSON(ctx, "/api/v1/acknowledgements", p, &out)
	return out, err
}

// DraftAcknowledgement implements API.
func (c *Client) DraftAcknowledgement(ctx context.Context, p AckParams) ([]byte, error) {
	return c.draft(ctx, "/api/v1/acknowledgements/draft", p)
}

// Reciprocity implements API.
func (c *Client) Reciprocity(ctx context.Context, commons string, since time.Time) (ReciprocityInfo, error) {
	var v ReciprocityInfo
	path := "/api/v1/commons/" + url.PathEscape(commons) + "/reciprocity"
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	return v, c.do(ctx, http.MethodGet, path, nil, "", &v)
}

// Show implements API.
func (c *Client) Show(ctx context.Context, id string) (RecordInfo, error) {
	var v RecordInfo
	return v, c.do(ctx, http.MethodGet, "/api/v1/records/"+url.PathEscape(id), nil, "", &v)
}

// Feed implements API.
func (c *Client) Feed(ctx context.Context, q FeedQuery) ([]FeedItem, error) {
	v := url.Values{}
	if q.Commons != "" {
		v.Set("commons", q.Commons)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Since > 0 {
		v.Set("since", strconv.FormatUint(q.Since, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Wait > 0 {
		v.Set("wait", q.Wait.String())
	}
	var items []FeedItem
	return items, c.do(ctx, http.MethodGet, "/api/v1/feed?"+v.Encode(), nil, "", &items)
}

// Export implements API.
func (c *Client) Export(ctx context.Context, commons string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/commons/"+url.PathEscape(commons)+"/car", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export interrupted: %w", err)
	}
	return nil
}

// Import implements API.
func (c *Client) Import(ctx context.Context, r io.Reader, join bool) (ImportReport, error) {
	var rep ImportReport
	resp, err := c.sendRaw(ctx, r, join)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	var body struct {
		ImportReport
		Error  string       `json:"error"`
		Report ImportReport `json:"report"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return rep, fmt.Errorf("daemon API import: bad response: %w", err)
	}
	if resp.StatusCode >= 300 {
		return body.Report, &remoteError{sentinel: sentinelFor(resp.StatusCode), msg: body.Error}
	}
	return body.ImportReport, nil
}

func (c *Client) sendRaw(ctx context.Context, r io.Reader, join bool) (*http.Response, error) {
	path := "/api/v1/import"
	if join {
		path += "?join=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("daemon API: %w", err)
	}
	req.Header.Set("Content-Type", "application/vnd.ipld.car")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon API at %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusBadRequest {
		defer resp.Body.Close()
		var e ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, &remoteError{sentinel: sentinelFor(resp.StatusCode), msg: e.Error}
	}
	return resp, nil
}

// Sync implements API.
func (c *Client) Sync(ctx context.Context, peer string, commons ...string) (SyncReport, error) {
	var out SyncReport
	err := c.postJSON(ctx, "/api/v1/sync", syncRequest{Peer: peer, Commons: commons}, &out)
	return out, err
}
