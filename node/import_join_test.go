package node

import (
	"bytes"
	"testing"

	"github.com/commons-p2p/commons/store/memstore"
	"github.com/commons-p2p/commons/testnet/gen"
)

// An import stores the records of the commons replicated here; those of
// another commons, even one nobody founded, are skipped and counted
// unless the import is asked to join.
func TestImportJoinsOnlyWhenAsked(t *testing.T) {
	g, err := gen.Generate(gen.Options{Records: 50, Authors: 5, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	car, err := g.CAR()
	if err != nil {
		t.Fatal(err)
	}
	n := startOn(t, memstore.New())
	defer n.Close()
	ctx := t.Context()
	rep, err := n.Import(ctx, bytes.NewReader(car), false)
	if err != nil || rep.Imported != 0 || rep.Skipped != 50 || len(rep.NotReplicated) != 1 || rep.NotReplicated[0] != g.ID.String() {
		t.Fatalf("import without join = %+v, %v; want 50 records skipped, of %s", rep, err, g.ID)
	}
	if st, err := n.Status(ctx); err != nil || len(st.Commons) != 0 {
		t.Fatalf("an import without join replicates %+v, %v", st.Commons, err)
	}
	if err := n.Join(ctx, g.ID.String()); err != nil {
		t.Fatal(err)
	}
	if rep, err := n.Import(ctx, bytes.NewReader(car), false); err != nil || rep.Imported != 50 || rep.Skipped != 0 {
		t.Fatalf("import of a commons joined = %+v, %v; want every record", rep, err)
	}
}
