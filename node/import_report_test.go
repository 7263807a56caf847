package node

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/gen"
)

// An import of a file with more bad records than a report names counts
// them all, names the first api.MaxListedRejects, and still stores the
// good ones: the report's memory does not grow with the file.
func TestImportReportCapsRejects(t *testing.T) {
	w := newWorld(t)
	var car bytes.Buffer
	if err := w.n.Export(t.Context(), w.commons, &car); err != nil {
		t.Fatal(err)
	}
	roots, good := readCAR(t, car.Bytes())
	const bad = api.MaxListedRejects + 234
	blocks := good
	for i := range bad {
		raw := []byte(fmt.Sprint("not a record ", i))
		blocks = append(blocks, carBlock{cid: protocol.RecordCID([]byte(fmt.Sprint("other bytes ", i))), raw: raw})
	}
	dst := startOffline(t)
	rep, err := dst.Import(t.Context(), bytes.NewReader(writeCAR(t, roots, blocks)), true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != len(good) || rep.RejectedTotal != bad || len(rep.Rejected) != api.MaxListedRejects || rep.Rejects() != bad {
		t.Errorf("report: %d imported, %d rejected of which %d named; want %d, %d, %d",
			rep.Imported, rep.RejectedTotal, len(rep.Rejected), len(good), bad, api.MaxListedRejects)
	}
}

// An import counts what the node holds already wherever it lies in the
// file: held records in the first batches are taken out before they are
// verified, and held records after a batch of new ones (which ends that
// lookup) are counted as present all the same, not imported twice.
func TestImportCountsHeldAnywhere(t *testing.T) {
	g, err := gen.Generate(gen.Options{Records: 6 * importBatch, Authors: 20, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	all, err := g.CAR()
	if err != nil {
		t.Fatal(err)
	}
	roots, blocks := readCAR(t, all)
	// The node holds the first two batches and the last two.
	held := append(slices.Clone(blocks[:2*importBatch]), blocks[4*importBatch:]...)
	n := startOffline(t)
	rep, err := n.Import(t.Context(), bytes.NewReader(writeCAR(t, roots, held)), true)
	if err != nil || rep.Imported != len(held) {
		t.Fatalf("first import: %+v, %v", rep, err)
	}
	rep, err = n.Import(t.Context(), bytes.NewReader(all), true)
	if err != nil || rep.Imported != 2*importBatch || rep.Duplicates != len(held) || rep.RejectedTotal != 0 {
		t.Fatalf("import of the whole file: %d imported, %d present, %d rejected, %v; want %d, %d, 0",
			rep.Imported, rep.Duplicates, rep.RejectedTotal, err, 2*importBatch, len(held))
	}
	st, err := n.Status(t.Context())
	if err != nil || st.Commons[0].Records != len(blocks) {
		t.Fatalf("status: %+v, %v; want %d records", st.Commons, err, len(blocks))
	}
}
