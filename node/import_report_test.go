package node

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
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
