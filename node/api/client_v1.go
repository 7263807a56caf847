package api

import (
	"bufio"
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

	"github.com/commons-p2p/commons/node/feed"
)

// Contributions lists a commons' contributions (GET
// /api/v1/commons/{id}/contributions).
func (c *Client) Contributions(ctx context.Context, q ContributionQuery) (ContributionPage, error) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("status", q.Status)
	set("kind", q.Kind)
	set("author", q.Author)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var page ContributionPage
	return page, c.do(ctx, http.MethodGet, "/api/v1/commons/"+url.PathEscape(q.Commons)+"/contributions?"+v.Encode(), nil, "", &page)
}

// RawRecord returns a record's DAG-CBOR bytes (GET
// /api/v1/records/{cid}?format=cbor).
func (c *Client) RawRecord(ctx context.Context, id string) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/records/"+url.PathEscape(id)+"?format=cbor", nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// Events follows a commons' live feed (GET /api/v1/commons/{id}/events)
// after the event id from ("" for the start), calling fn for every event
// that filter keeps, in order and once each. It reconnects with
// Last-Event-ID when the stream ends (an overflow, a restart, a dropped
// connection), and returns when ctx ends (nil), fn fails (its error) or the
// daemon refuses the request.
func (c *Client) Events(ctx context.Context, commons, from string, filter feed.EventFilter, fn func(feed.Event) error) error {
	v := url.Values{}
	for k, s := range map[string]string{"type": filter.Type, "status": filter.Status, "kind": filter.Kind, "author": filter.Author} {
		if s != "" {
			v.Set(k, s)
		}
	}
	path := "/api/v1/commons/" + url.PathEscape(commons) + "/events?" + v.Encode()
	last := from
	for {
		err := c.stream(ctx, path, &last, fn)
		if ctx.Err() != nil {
			return nil
		}
		var fe fnError
		if errors.As(err, &fe) {
			return fe.err
		}
		var re *remoteError
		if errors.As(err, &re) && !errors.Is(err, ErrClosed) {
			return err
		}
		if err != nil {
			// The daemon went away: wait a little and resume.
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// fnError wraps an error returned by the caller's callback.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// stream reads one SSE connection until it ends, updating last.
func (c *Client) stream(ctx context.Context, path string, last *string, fn func(feed.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("daemon API: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("daemon API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e ErrorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		if e.Error == "" {
			e.Error = fmt.Sprintf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		return &remoteError{sentinel: sentinelFor(resp.StatusCode), msg: e.Error}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id, kind string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if id != "" {
				*last = id
			}
			if kind == "" && len(data) > 0 {
				var ev feed.Event
				if err := json.Unmarshal(data, &ev); err != nil {
					return fmt.Errorf("daemon API: bad event %q: %w", data, err)
				}
				if err := fn(ev); err != nil {
					return fnError{err}
				}
			}
			id, kind, data = "", "", data[:0]
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			id = string(value)
		case "event":
			kind = string(value)
		case "data":
			data = append(data, value...)
		}
	}
	return sc.Err()
}
