package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/commons-p2p/commons/protocol"
)

// MaxJSONBody caps a JSON request body, in bytes.
const MaxJSONBody = 1 << 20

// ErrorBody is the body of every error response. For a record refused by
// validation, Reason names the protocol error (protocol.ErrorCode) and
// Field the field at fault, so that Client gives back errors that
// errors.Is and errors.As can test as in process.
type ErrorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
	Field  string `json:"field,omitempty"`
}

// CIDResponse is the body that answers a request that created something.
type CIDResponse struct {
	CID string `json:"cid"`
}

// Handler returns the HTTP API over api. Writes (POST, PUT) need the bearer
// token; reads do not (the API listens on loopback).
func Handler(api API, token string) http.Handler {
	h := &handler{api: api, token: token}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/id", h.id)
	mux.HandleFunc("GET /api/v1/status", h.status)
	mux.HandleFunc("GET /api/v1/peers", h.peers)
	mux.HandleFunc("POST /api/v1/manifests", h.auth(h.createManifest))
	mux.HandleFunc("GET /api/v1/commons/{id}/manifest", h.manifest)
	mux.HandleFunc("POST /api/v1/commons/{id}/manifest", h.auth(h.updateManifest))
	mux.HandleFunc("POST /api/v1/commons/{id}/manifest/draft", h.auth(h.draftManifest))
	mux.HandleFunc("POST /api/v1/manifests/draft", h.auth(h.draftGenesis))
	mux.HandleFunc("POST /api/v1/manifests/cosign", h.auth(h.cosignManifest))
	mux.HandleFunc("POST /api/v1/records", h.auth(h.publish))
	mux.HandleFunc("PUT /api/v1/commons/{id}", h.auth(h.join))
	mux.HandleFunc("DELETE /api/v1/commons/{id}", h.auth(h.leave))
	mux.HandleFunc("GET /api/v1/commons/{id}/car", h.export)
	mux.HandleFunc("POST /api/v1/blobs", h.auth(h.putBlob))
	mux.HandleFunc("GET /api/v1/blobs/{cid}", h.getBlob)
	mux.HandleFunc("POST /api/v1/contributions", h.auth(h.contribute))
	mux.HandleFunc("POST /api/v1/reviews", h.auth(h.review))
	mux.HandleFunc("POST /api/v1/sponsorships", h.auth(h.sponsor))
	mux.HandleFunc("POST /api/v1/profiles", h.auth(h.setProfile))
	mux.HandleFunc("GET /api/v1/commons/{id}/profiles/{key}", h.profile)
	mux.HandleFunc("GET /api/v1/commons/{id}/reciprocity", h.reciprocity)
	mux.HandleFunc("POST /api/v1/pledges", h.auth(h.pledge))
	mux.HandleFunc("POST /api/v1/acknowledgements", h.auth(h.acknowledge))
	mux.HandleFunc("POST /api/v1/acknowledgements/draft", h.auth(h.draftAcknowledgement))
	mux.HandleFunc("POST /api/v1/disputes", h.auth(h.openDispute))
	mux.HandleFunc("GET /api/v1/disputes/{cid}", h.dispute)
	mux.HandleFunc("GET /api/v1/commons/{id}/disputes", h.disputes)
	mux.HandleFunc("POST /api/v1/statements", h.auth(h.addStatement))
	mux.HandleFunc("POST /api/v1/resolutions", h.auth(h.resolve))
	mux.HandleFunc("POST /api/v1/resolutions/draft", h.auth(h.draftResolution))
	mux.HandleFunc("POST /api/v1/certificates", h.auth(h.certify))
	mux.HandleFunc("POST /api/v1/certificates/draft", h.auth(h.draftCertificate))
	mux.HandleFunc("GET /api/v1/certificates/{cid}", h.certificate)
	mux.HandleFunc("GET /api/v1/certificates/{cid}/car", h.certificateBundle)
	mux.HandleFunc("POST /api/v1/rotations/draft", h.auth(h.draftRotation))
	mux.HandleFunc("GET /api/v1/records/{cid}", h.show)
	mux.HandleFunc("GET /api/v1/feed", h.feed)
	mux.HandleFunc("POST /api/v1/import", h.auth(h.importCAR))
	mux.HandleFunc("POST /api/v1/sync", h.auth(h.sync))
	registerV1(mux, h)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no API route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type handler struct {
	api   API
	token string
}

func (h *handler) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		const prefix = "Bearer "
		got := r.Header.Get("Authorization")
		if len(got) <= len(prefix) || got[:len(prefix)] != prefix {
			writeError(w, http.StatusUnauthorized, errors.New("missing API token: send Authorization: Bearer <token from the repo's api.token>"))
			return
		}
		if subtle.ConstantTimeCompare([]byte(got[len(prefix):]), []byte(h.token)) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("wrong API token"))
			return
		}
		next(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	// Encoded first: a value that does not encode is an error, not a
	// success with an empty body.
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(ErrorBody{Error: "encode the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, code int, err error) {
	body := ErrorBody{Error: err.Error(), Reason: protocol.ErrorCode(err)}
	if fe := (*protocol.FieldError)(nil); errors.As(err, &fe) {
		body.Field = fe.Field
	}
	writeJSON(w, code, body)
}

// fail maps a node error onto an HTTP status.
func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnknownCommons):
		code = http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrDiskFull):
		code = http.StatusInsufficientStorage
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err)
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	// dec.More misses a stray '}' or ']', so demand a clean EOF.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, errors.New("request body: trailing data after the JSON object"))
		return false
	}
	return true
}

func (h *handler) id(w http.ResponseWriter, r *http.Request) {
	if v, err := h.api.ID(r.Context()); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	if v, err := h.api.Status(r.Context()); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) peers(w http.ResponseWriter, r *http.Request) {
	if v, err := h.api.Peers(r.Context()); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) created(w http.ResponseWriter, c string, err error) {
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, CIDResponse{CID: c})
}

func (h *handler) createManifest(w http.ResponseWriter, r *http.Request) {
	var p ManifestParams
	if decodeJSON(w, r, &p) {
		c, err := h.api.CreateManifest(r.Context(), p)
		h.created(w, c, err)
	}
}

func (h *handler) updateManifest(w http.ResponseWriter, r *http.Request) {
	var p ManifestParams
	if decodeJSON(w, r, &p) {
		pub, err := h.api.UpdateManifest(r.Context(), r.PathValue("id"), p)
		h.published(w, pub, err)
	}
}

// published answers a write that published a record: its CID and how the
// commons classifies it.
func (h *handler) published(w http.ResponseWriter, pub Published, err error) {
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, pub)
}

// boolParam reads a boolean query parameter: absent, true or false.
func boolParam(w http.ResponseWriter, r *http.Request, name string) (v, ok bool) {
	switch s := r.URL.Query().Get(name); s {
	case "", "false":
		return false, true
	case "true":
		return true, true
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("%s=%q: want true or false", name, s))
		return false, false
	}
}

// MediaTypeCBOR is the media type of a raw record (DAG-CBOR).
const MediaTypeCBOR = "application/vnd.ipld.dag-cbor"

func writeRecord(w http.ResponseWriter, raw []byte) {
	w.Header().Set("Content-Type", MediaTypeCBOR)
	_, _ = w.Write(raw)
}

// readDraft reads a body that is a raw record or a draft bundle (a CAR
// file), refusing one over MaxDraftSize.
func readDraft(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDraftSize))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body (a raw DAG-CBOR record, or a draft bundle of at most %d bytes): %w", MaxDraftSize, err))
		return nil, false
	}
	return raw, true
}

// writeDraft writes a raw record or a draft bundle, with its media type.
func writeDraft(w http.ResponseWriter, raw []byte) {
	if draftType(raw) == MediaTypeCAR {
		w.Header().Set("Content-Type", MediaTypeCAR)
		_, _ = w.Write(raw)
		return
	}
	writeRecord(w, raw)
}

func (h *handler) draftManifest(w http.ResponseWriter, r *http.Request) {
	var p ManifestParams
	if !decodeJSON(w, r, &p) {
		return
	}
	raw, err := h.api.DraftManifest(r.Context(), r.PathValue("id"), p)
	if err != nil {
		fail(w, err)
		return
	}
	writeDraft(w, raw)
}

func (h *handler) draftGenesis(w http.ResponseWriter, r *http.Request) {
	var p ManifestParams
	if !decodeJSON(w, r, &p) {
		return
	}
	raw, err := h.api.DraftManifest(r.Context(), "", p)
	if err != nil {
		fail(w, err)
		return
	}
	writeDraft(w, raw)
}

func (h *handler) cosignManifest(w http.ResponseWriter, r *http.Request) {
	draft, ok := readDraft(w, r)
	if !ok {
		return
	}
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	raw, err := h.api.CosignManifest(r.Context(), draft, force)
	if err != nil {
		fail(w, err)
		return
	}
	writeDraft(w, raw)
}

func (h *handler) publish(w http.ResponseWriter, r *http.Request) {
	raw, ok := readDraft(w, r)
	if !ok {
		return
	}
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	pub, err := h.api.Publish(r.Context(), raw, force)
	h.published(w, pub, err)
}

func (h *handler) manifest(w http.ResponseWriter, r *http.Request) {
	if v, err := h.api.Manifest(r.Context(), r.PathValue("id")); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) join(w http.ResponseWriter, r *http.Request) {
	if err := h.api.Join(r.Context(), r.PathValue("id")); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"commons": r.PathValue("id")})
}

func (h *handler) leave(w http.ResponseWriter, r *http.Request) {
	purge, ok := boolParam(w, r, "purge")
	if !ok {
		return
	}
	if v, err := h.api.Leave(r.Context(), r.PathValue("id"), purge); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) export(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/vnd.ipld.car; version=1")
	lw := &lazyWriter{w: w}
	if err := h.api.Export(r.Context(), r.PathValue("id"), lw); err != nil {
		if lw.written {
			// Too late for a status: cut the response so the client sees
			// an error rather than a short file.
			panic(http.ErrAbortHandler)
		}
		w.Header().Del("Content-Type")
		fail(w, err)
	}
}

// lazyWriter defers the 200 header until the first byte, so an early error
// can still be reported with its status.
type lazyWriter struct {
	w       http.ResponseWriter
	written bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.written = true
	return l.w.Write(p)
}

func (h *handler) putBlob(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBlobSize))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("blob body: %w", err))
		return
	}
	c, err := h.api.PutBlob(r.Context(), data)
	h.created(w, c, err)
}

func (h *handler) getBlob(w http.ResponseWriter, r *http.Request) {
	data, err := h.api.GetBlob(r.Context(), r.PathValue("cid"))
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(data)
}

func (h *handler) contribute(w http.ResponseWriter, r *http.Request) {
	var p ContributeParams
	if decodeJSON(w, r, &p) {
		c, err := h.api.Contribute(r.Context(), p)
		h.created(w, c, err)
	}
}

func (h *handler) review(w http.ResponseWriter, r *http.Request) {
	var p ReviewParams
	if decodeJSON(w, r, &p) {
		pub, err := h.api.Review(r.Context(), p)
		h.published(w, pub, err)
	}
}

func (h *handler) sponsor(w http.ResponseWriter, r *http.Request) {
	var p SponsorParams
	if decodeJSON(w, r, &p) {
		pub, err := h.api.Sponsor(r.Context(), p)
		h.published(w, pub, err)
	}
}

func (h *handler) setProfile(w http.ResponseWriter, r *http.Request) {
	var p ProfileParams
	if decodeJSON(w, r, &p) {
		pub, err := h.api.SetProfile(r.Context(), p)
		h.published(w, pub, err)
	}
}

func (h *handler) profile(w http.ResponseWriter, r *http.Request) {
	if v, err := h.api.Profile(r.Context(), r.PathValue("id"), r.PathValue("key")); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) pledge(w http.ResponseWriter, r *http.Request) {
	var p PledgeParams
	if decodeJSON(w, r, &p) {
		pub, err := h.api.Pledge(r.Context(), p)
		h.published(w, pub, err)
	}
}

func (h *handler) acknowledge(w http.ResponseWriter, r *http.Request) {
	var p AckParams
	if decodeJSON(w, r, &p) {
		pub, err := h.api.Acknowledge(r.Context(), p)
		h.published(w, pub, err)
	}
}

func (h *handler) draftAcknowledgement(w http.ResponseWriter, r *http.Request) {
	var p AckParams
	if !decodeJSON(w, r, &p) {
		return
	}
	raw, err := h.api.DraftAcknowledgement(r.Context(), p)
	if err != nil {
		fail(w, err)
		return
	}
	writeDraft(w, raw)
}

func (h *handler) reciprocity(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("since %q is not a time such as 2026-01-31T00:00:00Z", s))
			return
		}
	}
	if v, err := h.api.Reciprocity(r.Context(), r.PathValue("id"), since); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) show(w http.ResponseWriter, r *http.Request) {
	if h.showRaw(w, r) {
		return
	}
	if v, err := h.api.Show(r.Context(), r.PathValue("cid")); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) feed(w http.ResponseWriter, r *http.Request) {
	q := FeedQuery{Commons: r.URL.Query().Get("commons"), Status: r.URL.Query().Get("status")}
	var err error
	if s := r.URL.Query().Get("since"); s != "" {
		if q.Since, err = strconv.ParseUint(s, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("since %q is not a cursor (a whole number)", s))
			return
		}
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q is not a positive whole number", s))
			return
		}
	}
	if s := r.URL.Query().Get("wait"); s != "" {
		if q.Wait, err = time.ParseDuration(s); err != nil || q.Wait < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("wait %q is not a duration such as 30s", s))
			return
		}
	}
	if v, err := h.api.Feed(r.Context(), q); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) importCAR(w http.ResponseWriter, r *http.Request) {
	join, ok := boolParam(w, r, "join")
	if !ok {
		return
	}
	rep, err := h.api.Import(r.Context(), r.Body, join)
	if err != nil {
		if errors.Is(err, ErrBadRequest) {
			writeJSON(w, http.StatusBadRequest, struct {
				ErrorBody
				Report ImportReport `json:"report"`
			}{ErrorBody{Error: err.Error()}, rep})
			return
		}
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// syncRequest is the body of POST /api/v1/sync.
type syncRequest struct {
	Peer    string   `json:"peer"`
	Commons []string `json:"commons"`
}

func (h *handler) sync(w http.ResponseWriter, r *http.Request) {
	var req syncRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	rep, err := h.api.Sync(r.Context(), req.Peer, req.Commons...)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// postPublished decodes a request body into P and answers with what
// publishing it gave.
func postPublished[P any](h *handler, w http.ResponseWriter, r *http.Request, fn func(context.Context, P) (Published, error)) {
	var p P
	if decodeJSON(w, r, &p) {
		pub, err := fn(r.Context(), p)
		h.published(w, pub, err)
	}
}

// postDraft decodes a request body into P and answers with the draft
// bundle fn makes of it.
func postDraft[P any](w http.ResponseWriter, r *http.Request, fn func(context.Context, P) ([]byte, error)) {
	var p P
	if !decodeJSON(w, r, &p) {
		return
	}
	raw, err := fn(r.Context(), p)
	if err != nil {
		fail(w, err)
		return
	}
	writeDraft(w, raw)
}

// answer writes v, or the error.
func answer(w http.ResponseWriter, v any, err error) {
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) openDispute(w http.ResponseWriter, r *http.Request) {
	postPublished(h, w, r, h.api.OpenDispute)
}

func (h *handler) addStatement(w http.ResponseWriter, r *http.Request) {
	postPublished(h, w, r, h.api.AddStatement)
}

func (h *handler) resolve(w http.ResponseWriter, r *http.Request) {
	postPublished(h, w, r, h.api.Resolve)
}

func (h *handler) draftResolution(w http.ResponseWriter, r *http.Request) {
	postDraft(w, r, h.api.DraftResolution)
}

func (h *handler) certify(w http.ResponseWriter, r *http.Request) {
	postPublished(h, w, r, h.api.Certify)
}

func (h *handler) draftCertificate(w http.ResponseWriter, r *http.Request) {
	postDraft(w, r, h.api.DraftCertificate)
}

func (h *handler) disputes(w http.ResponseWriter, r *http.Request) {
	v, err := h.api.Disputes(r.Context(), r.PathValue("id"), r.URL.Query().Get("after"))
	answer(w, v, err)
}

func (h *handler) dispute(w http.ResponseWriter, r *http.Request) {
	v, err := h.api.Dispute(r.Context(), r.PathValue("cid"), r.URL.Query().Get("after"))
	answer(w, v, err)
}

func (h *handler) certificate(w http.ResponseWriter, r *http.Request) {
	var at time.Time
	if s := r.URL.Query().Get("at"); s != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, s); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("at %q is not a time such as 2026-01-31T00:00:00Z", s))
			return
		}
	}
	v, err := h.api.Certificate(r.Context(), r.PathValue("cid"), at)
	answer(w, v, err)
}

func (h *handler) certificateBundle(w http.ResponseWriter, r *http.Request) {
	raw, err := h.api.CertificateBundle(r.Context(), r.PathValue("cid"))
	if err != nil {
		fail(w, err)
		return
	}
	writeDraft(w, raw)
}

func (h *handler) draftRotation(w http.ResponseWriter, r *http.Request) {
	postDraft(w, r, h.api.DraftRotation)
}
