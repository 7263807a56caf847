package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The association's records over the daemon's HTTP API.

// OpenDispute implements API.
func (c *Client) OpenDispute(ctx context.Context, p DisputeParams) (Published, error) {
	var out Published
	return out, c.postJSON(ctx, "/api/v1/disputes", p, &out)
}

// AddStatement implements API.
func (c *Client) AddStatement(ctx context.Context, p StatementParams) (Published, error) {
	var out Published
	return out, c.postJSON(ctx, "/api/v1/statements", p, &out)
}

// Resolve implements API.
func (c *Client) Resolve(ctx context.Context, p ResolveParams) (Published, error) {
	var out Published
	return out, c.postJSON(ctx, "/api/v1/resolutions", p, &out)
}

// DraftResolution implements API.
func (c *Client) DraftResolution(ctx context.Context, p ResolveParams) ([]byte, error) {
	return c.draft(ctx, "/api/v1/resolutions/draft", p)
}

// Certify implements API.
func (c *Client) Certify(ctx context.Context, p CertifyParams) (Published, error) {
	var out Published
	return out, c.postJSON(ctx, "/api/v1/certificates", p, &out)
}

// DraftCertificate implements API.
func (c *Client) DraftCertificate(ctx context.Context, p CertifyParams) ([]byte, error) {
	return c.draft(ctx, "/api/v1/certificates/draft", p)
}

// draft posts p as JSON and returns the draft bundle answered.
func (c *Client) draft(ctx context.Context, path string, p any) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("daemon API: encode request: %w", err)
	}
	return c.bytes(ctx, path, bytes.NewReader(b), "application/json")
}

// Disputes implements API.
func (c *Client) Disputes(ctx context.Context, commons, after string) (DisputeList, error) {
	var v DisputeList
	path := "/api/v1/commons/" + url.PathEscape(commons) + "/disputes"
	if after != "" {
		path += "?after=" + url.QueryEscape(after)
	}
	return v, c.do(ctx, http.MethodGet, path, nil, "", &v)
}

// Dispute implements API.
func (c *Client) Dispute(ctx context.Context, id, after string) (DisputeInfo, error) {
	var v DisputeInfo
	path := "/api/v1/disputes/" + url.PathEscape(id)
	if after != "" {
		path += "?after=" + url.QueryEscape(after)
	}
	return v, c.do(ctx, http.MethodGet, path, nil, "", &v)
}

// Certificate implements API.
func (c *Client) Certificate(ctx context.Context, id string, at time.Time) (CertificateInfo, error) {
	var v CertificateInfo
	path := "/api/v1/certificates/" + url.PathEscape(id)
	if !at.IsZero() {
		path += "?at=" + url.QueryEscape(at.UTC().Format(time.RFC3339Nano))
	}
	return v, c.do(ctx, http.MethodGet, path, nil, "", &v)
}

// CertificateBundle implements API.
func (c *Client) CertificateBundle(ctx context.Context, id string) ([]byte, error) {
	return c.get(ctx, "/api/v1/certificates/"+url.PathEscape(id)+"/car")
}

// DraftRotation implements API.
func (c *Client) DraftRotation(ctx context.Context, p RotateParams) ([]byte, error) {
	return c.draft(ctx, "/api/v1/rotations/draft", p)
}
