package gen

import (
	"bytes"
	"context"
	"testing"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

// offlineNode starts an offline node on a memory store.
func offlineNode(t testing.TB) *node.Node {
	t.Helper()
	nd, err := node.New(node.Config{Store: memstore.New(), Offline: true, Key: NodeKey(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Close() })
	return nd
}

// The same seed gives the same bytes; every record is valid; the statuses
// are a realistic mix.
func TestGenerate(t *testing.T) {
	opts := Options{Records: 3000, Authors: 40, Maintainers: 5, Seed: 7}
	a, err := Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	carA, err := a.CAR()
	if err != nil {
		t.Fatal(err)
	}
	carB, err := b.CAR()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(carA, carB) {
		t.Fatal("the same seed gave different CAR bytes")
	}
	opts.Seed = 8
	if c, err := Generate(opts); err != nil || c.ID.Equals(a.ID) {
		t.Fatalf("another seed: %v, same commons %v", err, c.ID)
	}
	if len(a.Records) != 3000 || a.Manifests < 2 || a.Contributions == 0 || a.Reviews == 0 {
		t.Fatalf("generated %d records: %d manifests, %d contributions, %d reviews", len(a.Records), a.Manifests, a.Contributions, a.Reviews)
	}

	nd := offlineNode(t)
	rep, err := nd.Import(context.Background(), bytes.NewReader(carA), true)
	if err != nil || rep.Imported != 3000 || len(rep.Rejected) != 0 {
		t.Fatalf("import: %d imported, %d rejected (%v), err %v", rep.Imported, len(rep.Rejected), rep.Rejected[:min(3, len(rep.Rejected))], err)
	}
	st, err := nd.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := st.Commons[0]
	t.Logf("3000 records: %d manifests, %d contributions (%d pending, %d accepted, %d rejected), %d reviews, %d inert, %d waiting",
		a.Manifests, a.Contributions, c.Pending, c.Accepted, c.Rejected, a.Reviews, c.Inert, c.Waiting)
	if c.Records != 3000 || c.Waiting != 0 || c.Inert != 0 || len(c.Forks) != 0 {
		t.Errorf("status %+v: want 3000 records, none waiting or inert, no fork", c)
	}
	total := c.Pending + c.Accepted + c.Rejected
	for name, k := range map[string]int{"pending": c.Pending, "accepted": c.Accepted, "rejected": c.Rejected} {
		if k < total/20 {
			t.Errorf("%d of %d contributions %s: want a realistic mix", k, total, name)
		}
	}
}

// WriteCAR streams exactly the bytes and counts of Generate and its CAR,
// for several option sets.
func TestWriteCARStreamsTheSameCommons(t *testing.T) {
	for _, o := range []Options{
		{Records: 1},
		{Records: 700, Authors: 3, Maintainers: 1, Seed: 2},
		{Records: 3000, Authors: 40, Seed: 9, NoPayloads: true},
	} {
		g, err := Generate(o)
		if err != nil {
			t.Fatal(err)
		}
		want, err := g.CAR()
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		sum, err := WriteCAR(o, &got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) || sum != g.Summary {
			t.Errorf("options %+v: WriteCAR wrote %d bytes (%+v), Generate's CAR %d (%+v)", o, got.Len(), sum, len(want), g.Summary)
		}
	}
}

// However many records, a commons spans about genSpan: a node refuses
// records dated in its future, and ten million records 1 ms to 60 s apart
// would reach years past the default start.
func TestGenerateSpan(t *testing.T) {
	defer func(s int64) { genSpan = s }(genSpan)
	genSpan = 60_000 // a minute: 2,000 records then follow 1 to 60 ms apart
	const n = 2000
	g, err := Generate(Options{Records: n, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := protocol.Parse(g.Records[0])
	if err != nil {
		t.Fatal(err)
	}
	last, err := protocol.Parse(g.Records[n-1])
	if err != nil {
		t.Fatal(err)
	}
	span := last.Record.Time.Millis() - first.Record.Time.Millis()
	if span > 2*genSpan || span < genSpan/2 {
		t.Errorf("%d records span %d ms; want about %d", n, span, genSpan)
	}
}
