package node

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// rejections reads commons_records_rejected_total for reason from /metrics.
func (w *world) rejections(t *testing.T, reason string) int {
	t.Helper()
	code, b := w.raw(t, "GET", "/metrics", noAuth, nil)
	m := regexp.MustCompile(`(?m)^commons_records_rejected_total\{reason="` + reason + `"\} (\d+)$`).FindSubmatch(b)
	if code != 200 || m == nil {
		t.Fatalf("/metrics (%d) has no rejections for %s", code, reason)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// reseal returns a copy of a stored record changed by edit and signed again
// with the node's key (unless edit spoils the signature afterwards).
func reseal(t *testing.T, w *world, c string, edit func(*protocol.Record), spoil bool) []byte {
	t.Helper()
	b := must[*protocol.Block](t)(protocol.Parse(must[[]byte](t)(w.n.RawRecord(t.Context(), c))))
	rec := *b.Record
	edit(&rec)
	if err := protocol.Sign(&rec, w.n.key); err != nil {
		t.Fatal(err)
	}
	if spoil {
		rec.Sig[0] ^= 1
	}
	raw, _, err := protocol.Encode(&rec)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Every way in applies the same rules and counts each refusal once, by
// reason: gossip, a CAR import and a record posted to the API refuse a
// forged signature and a record from the future the same way, and the
// error keeps its chain (errors.Is finds protocol's sentinel).
func TestAdmissionOnePath(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	forged := reseal(t, w, w.pending, func(r *protocol.Record) { r.Body.(*protocol.Contribution).Title = "forged" }, true)
	future := reseal(t, w, w.pending, func(r *protocol.Record) {
		r.Time = protocol.NextHLC(time.Now().Add(time.Hour).UnixMilli(), 0)
	}, false)
	commons := must[cid.Cid](t)(cid.Decode(w.commons))
	gossip := func(raw []byte) pubsub.ValidationResult {
		return w.n.validator(commons)(ctx, "", &pubsub.Message{Message: &pb.Message{Data: raw}})
	}
	imports := func(raw []byte) api.ImportReport {
		c := protocol.RecordCID(raw)
		return must[api.ImportReport](t)(w.n.Import(ctx, bytes.NewReader(writeCAR(t, []cid.Cid{c}, []carBlock{{c, raw}})), true))
	}
	for _, tt := range []struct {
		name   string
		raw    []byte
		reason string
		is     error
		gossip pubsub.ValidationResult
	}{
		{"forged signature", forged, "bad_signature", protocol.ErrBadSignature, pubsub.ValidationReject},
		{"an hour ahead", future, "future_time", protocol.ErrFutureTime, pubsub.ValidationIgnore},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := w.rejections(t, tt.reason)
			if got := gossip(tt.raw); got != tt.gossip {
				t.Errorf("gossip: %v, want %v", got, tt.gossip)
			}
			if rep := imports(tt.raw); rep.Imported != 0 || len(rep.Rejected) != 1 {
				t.Errorf("import: %+v, want the record refused", rep)
			}
			_, err := w.n.Publish(ctx, tt.raw, true)
			if !errors.Is(err, api.ErrBadRequest) || !errors.Is(err, tt.is) {
				t.Errorf("publish: %v, want ErrBadRequest wrapping %v", err, tt.is)
			}
			var fe *protocol.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("publish: %v carries no FieldError", err)
			}
			// Over HTTP the client gives back the same chain.
			_, cerr := w.c.Publish(ctx, tt.raw, true)
			var cfe *protocol.FieldError
			if !errors.Is(cerr, api.ErrBadRequest) || !errors.Is(cerr, tt.is) || !errors.As(cerr, &cfe) || fe == nil || cfe.Field != fe.Field {
				t.Errorf("publish through the client: %v, want ErrBadRequest wrapping %v in field %v", cerr, tt.is, fe)
			}
			if got := w.rejections(t, tt.reason) - before; got != 4 {
				t.Errorf("%d rejections counted for %s, want 4 (gossip, import, publish twice)", got, tt.reason)
			}
			if _, err := w.n.Show(context.Background(), protocol.RecordCID(tt.raw).String()); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("refused record stored: Show = %v", err)
			}
		})
	}
	t.Run("wrong commons", func(t *testing.T) {
		before := w.rejections(t, "wrong_commons")
		raw := must[[]byte](t)(w.n.RawRecord(ctx, w.openC))
		if got := gossip(raw); got != pubsub.ValidationReject {
			t.Errorf("gossip: %v, want reject", got)
		}
		if got := w.rejections(t, "wrong_commons") - before; got != 1 {
			t.Errorf("%d wrong-commons rejections counted, want 1", got)
		}
		_, err := w.n.admitRaw(raw, commons)
		if !errors.Is(err, protocol.ErrWrongCommons) {
			t.Errorf("admitRaw = %v, want ErrWrongCommons", err)
		}
	})
}
