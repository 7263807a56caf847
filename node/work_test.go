package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

// carOf writes blocks into a CAR.
func carOf(t *testing.T, root cid.Cid, blocks ...*protocol.Block) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := protocol.NewCARWriter(&buf, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := w.Put(b.CID, b.Raw); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// signedContribution is a contribution to commons by k at time tm.
func signedContribution(t *testing.T, k protocol.PrivateKey, commons cid.Cid, tm protocol.HLC) *protocol.Block {
	t.Helper()
	r := &protocol.Record{Commons: commons, Time: tm, Body: &protocol.Contribution{
		Title: "from elsewhere", Licence: protocol.Link{Cid: commons}, Provenance: protocol.ProvenanceVolunteer}}
	if err := protocol.Sign(r, k); err != nil {
		t.Fatal(err)
	}
	b, err := protocol.NewBlock(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A commons whose genesis asks for proof of work (SPEC §7.4): every record
// the node makes carries it; a record that arrives short of it is refused,
// naming the work, and one that carries it is stored; no update can
// change the rule; an export imports into a node that never saw the
// commons.
func TestWorkAsked(t *testing.T) {
	const bits = 10
	ctx := t.Context()
	n := startOn(t, memstore.New())
	defer n.Close()
	s, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("w"), Licence: ptr("MIT"),
		Maintainers: []protocol.PublicKey{n.Self()}, Work: ptr(uint64(bits))})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(s)
	carries := func(what, c string) {
		t.Helper()
		raw, err := n.st.GetRecord(ctx, cid.MustParse(c))
		if err != nil {
			t.Fatalf("%s %s: %v", what, c, err)
		}
		b, err := protocol.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if b.Work() < bits {
			t.Errorf("%s %s carries %d bits of work; the commons asks %d", what, c, b.Work(), bits)
		}
	}
	var made []string
	for i := range 3 {
		c, err := n.Contribute(ctx, api.ContributeParams{Commons: s, Title: "work " + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		carries("contribution", c)
		made = append(made, c)
	}
	rv, err := n.Review(ctx, api.ReviewParams{Target: made[0], Decision: protocol.DecisionAccept})
	if err != nil {
		t.Fatal(err)
	}
	carries("review", rv.CID)
	info, err := n.Manifest(ctx, s)
	if err != nil || info.Work != bits {
		t.Fatalf("manifest info: work %d, %v; want %d", info.Work, err, bits)
	}

	// The rule is the genesis's for good: an update may not set it, and a
	// plain update (which carries the genesis's other policy on) is made
	// with the work and counts.
	if _, err := n.UpdateManifest(ctx, s, api.ManifestParams{Work: ptr(uint64(bits + 2))}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "genesis") {
		t.Errorf("an update setting the work: %v; want it refused, naming the genesis", err)
	}
	up, err := n.UpdateManifest(ctx, s, api.ManifestParams{Name: ptr("w, renamed")})
	if err != nil {
		t.Fatal(err)
	}
	carries("manifest update", up.CID)
	if info, err := n.Manifest(ctx, s); err != nil || info.Head != up.CID || info.Work != bits {
		t.Fatalf("after the update: head %s, work %d, %v; want %s, %d", info.Head, info.Work, err, up.CID, bits)
	}

	// Records from elsewhere: short of the work, refused with the reason;
	// with it, stored.
	k := protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	tm := protocol.HLCFromMillis(n.nowMillis(), 0)
	short := signedContribution(t, k, id, tm)
	for short.Work() >= bits {
		tm++
		short = signedContribution(t, k, id, tm)
	}
	r := short.Record
	r.Time++
	if ok, err := protocol.SolveWork(r, bits, 1<<(bits+8)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	solved := signedContribution(t, k, id, r.Time)
	rep, err := n.Import(ctx, bytes.NewReader(carOf(t, id, short, solved)), false)
	if err != nil || rep.Imported != 1 || len(rep.Rejected) != 1 || rep.Rejected[0].CID != short.CID.String() ||
		!strings.Contains(rep.Rejected[0].Reason, "proof of work") {
		t.Fatalf("import = %+v, %v; want the record short of work refused for it, the other stored", rep, err)
	}
	if ok, _ := n.st.HasRecord(ctx, short.CID); ok {
		t.Fatal("a record short of work was stored")
	}

	// A node that never saw the commons imports its export whole.
	var car bytes.Buffer
	if err := n.Export(ctx, s, &car); err != nil {
		t.Fatal(err)
	}
	fresh := startOn(t, memstore.New())
	defer fresh.Close()
	rep, err = fresh.Import(ctx, bytes.NewReader(car.Bytes()), true)
	if err != nil || rep.RejectedTotal != 0 || rep.Imported != 7 {
		t.Fatalf("a fresh node's import of the export = %+v, %v; want all 7 records", rep, err)
	}
}

// A genesis read in a later batch of a CAR than other records of its
// commons cannot vouch for their work: they are refused as delayed, with
// a reason that says so, whatever the order the batches were prepared in,
// and the same file imported again stores them. In the same batch it
// vouches for them wherever it is.
func TestWorkGenesisLater(t *testing.T) {
	ctx := t.Context()
	src := startOn(t, memstore.New())
	defer src.Close()
	s, err := src.CreateManifest(ctx, api.ManifestParams{Name: ptr("w"), Licence: ptr("MIT"), Work: ptr(uint64(2))})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(s)
	var blocks []*protocol.Block
	for i := range importBatch + 10 {
		c, err := src.Contribute(ctx, api.ContributeParams{Commons: s, Title: fmt.Sprintf("c%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := src.st.GetRecord(ctx, cid.MustParse(c))
		b, _ := protocol.Parse(raw)
		blocks = append(blocks, b)
	}
	graw, _ := src.st.GetRecord(ctx, id)
	g, _ := protocol.Parse(graw)

	n := startOn(t, memstore.New())
	defer n.Close()
	few := carOf(t, id, append(slices.Clone(blocks[:3]), g)...)
	if rep, err := n.Import(ctx, bytes.NewReader(few), true); err != nil || rep.Imported != 4 {
		t.Fatalf("genesis last in one batch: %+v, %v; want all 4 stored", rep, err)
	}

	for round := range 5 {
		n := startOn(t, memstore.New())
		defer n.Close()
		car := carOf(t, id, append(slices.Clone(blocks), g)...)
		rep, err := n.Import(ctx, bytes.NewReader(car), true)
		if rep.Imported != 11 || rep.RejectedTotal != importBatch || err != nil {
			t.Fatalf("round %d: genesis in the second batch: %+v, %v; want the first batch refused, the second stored", round, rep, err)
		}
		for _, r := range rep.Rejected {
			if !strings.Contains(r.Reason, "genesis") {
				t.Fatalf("refused for %q; want the reason to name the genesis", r.Reason)
			}
		}
		rep, err = n.Import(ctx, bytes.NewReader(car), true)
		if rep.Imported != importBatch || rep.RejectedTotal != 0 || err != nil {
			t.Fatalf("round %d: the same file again: %+v, %v; want the rest stored", round, rep, err)
		}
	}
}

// A drafted update short of the work its commons asks could never be
// published: co-signing it is refused, naming the work. A commons ID that
// names a record other than a genesis asks nothing and vouches for
// nothing: its records wait.
func TestWorkDraftAndFalseGenesis(t *testing.T) {
	const bits = 10
	ctx := t.Context()
	n := startOn(t, memstore.New())
	defer n.Close()
	other := protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	s, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("w"), Licence: ptr("MIT"),
		Association: []protocol.PublicKey{n.Self(), other.Public()}, Threshold: ptr(uint64(1)), Work: ptr(uint64(bits))})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(s)
	graw, _ := n.st.GetRecord(ctx, id)
	g, _ := protocol.Parse(graw)
	m := *g.Record.Manifest()
	m.Policy, m.Prev, m.Version, m.Name = nil, []protocol.Link{{Cid: id}}, 1, "renamed"
	rec := &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(n.nowMillis(), 0), Body: &m}
	var draft *protocol.Block
	for ; ; rec.Time++ {
		if err := protocol.Sign(rec, other); err != nil {
			t.Fatal(err)
		}
		if draft, err = protocol.NewBlock(rec); err != nil {
			t.Fatal(err)
		}
		if draft.Work() < bits {
			break
		}
	}
	raw, err := encodeBundle(bundle{draft: draft, carried: []*protocol.Block{g}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CosignManifest(ctx, raw, false); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "proof of work") {
		t.Fatalf("co-signing a draft short of work: %v; want it refused, naming the work", err)
	}

	c, err := n.Contribute(ctx, api.ContributeParams{Commons: s, Title: "not a genesis"})
	if err != nil {
		t.Fatal(err)
	}
	if w, err := n.workOf(cid.MustParse(c)); err == nil {
		t.Fatalf("workOf(a contribution's CID) = %d, nil; want an error: no commons has that ID", w)
	}
}
