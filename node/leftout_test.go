package node

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// damagedRepo makes a badger repo in dir whose commons has one record
// damaged on disk (a byte of it flipped in the file that holds it), and
// whose derived state is of an earlier rules version, so that the next
// start derives the state again from the records. It returns the commons,
// the damaged record, the commons' status before the damage, and an
// export of the commons taken then (a peer's copy).
func damagedRepo(t *testing.T, dir string, n *Node) (id, victim cid.Cid, want api.CommonsStatus, peer []byte) {
	t.Helper()
	id, cons := fill(t, n, 9)
	victim, _ = cid.Decode(cons[0]) // a contribution with a review
	raw, err := n.st.GetRecord(t.Context(), victim)
	if err != nil {
		t.Fatal(err)
	}
	var car bytes.Buffer
	if err := n.Export(t.Context(), id.String(), &car); err != nil {
		t.Fatal(err)
	}
	want = commonsStatus(t, n, id)
	closeNode(t, n)
	// An open and close, so that the value log file holding the records
	// is not the newest (Open refuses a damaged newest file outright).
	onRepo(t, dir, func(*badgerstore.Store) {})
	flipRecord(t, dir, raw)
	onRepo(t, dir, func(st *badgerstore.Store) {
		err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: uint64(want.Records), Writes: []store.Write{
			{Key: versionKey, Value: []byte("layout 3, rules 3")},
		}}})
		if err != nil {
			t.Fatal(err)
		}
	})
	return id, victim, want, car.Bytes()
}

// flipRecord flips a bit in the middle of raw in the store file of dir
// that holds it.
func flipRecord(t *testing.T, dir string, raw []byte) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, f := range append(files, tables...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, raw); i >= 0 {
			b[i+len(raw)/2] ^= 0x04
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("the record is in no store file")
}

func commonsStatus(t *testing.T, n *Node, id cid.Cid) api.CommonsStatus {
	t.Helper()
	st, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Commons {
		if c.ID == id.String() {
			c.Peers = 0
			return c
		}
	}
	t.Fatalf("commons %s not in the status", id)
	return api.CommonsStatus{}
}

// TestDamagedRecordLeftOutThenMended: a record damaged in the store no
// longer stops a start that derives the state again: it is left out, and
// named in the log at that start and the next. When a whole copy of it
// comes (here a peer's export, imported; sync brings it the same way, the
// record being missing), the store writes it in place of the damaged
// bytes and the node applies it: the commons is as it was, and a restart
// says nothing more of it.
func TestDamagedRecordLeftOutThenMended(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, victim, want, peer := damagedRepo(t, dir, n)

	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	if !strings.Contains(log.String(), "a stored record is damaged: it is left out") || !strings.Contains(log.String(), victim.String()) {
		t.Errorf("the start did not name the record left out:\n%s", log.String())
	}
	got := commonsStatus(t, n, id)
	if got.Records != want.Records-1 || got.Waiting != want.Waiting+1 || got.StateRoot == want.StateRoot {
		t.Errorf("with the record left out: %+v; want one record fewer, its review waiting (before: %+v)", got, want)
	}
	closeNode(t, n)

	log = logBuffer{}
	n, _ = startRepo(t, dir, key, &log)
	if !strings.Contains(log.String(), "stored records are damaged, and left out") || !strings.Contains(log.String(), victim.String()) {
		t.Errorf("the next start did not name the record still left out:\n%s", log.String())
	}
	rep, err := n.Import(t.Context(), bytes.NewReader(peer), false)
	if err != nil || rep.Imported != 1 {
		t.Fatalf("import of the peer's copy: %+v, %v; want the damaged record taken in", rep, err)
	}
	if !strings.Contains(log.String(), "came again, whole") {
		t.Errorf("taking the record back was not logged:\n%s", log.String())
	}
	if got := commonsStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after the peer's copy: %+v; want %+v", got, want)
	}
	if raw, err := n.st.GetRecord(t.Context(), victim); err != nil || !bytes.Contains(peer, raw) {
		t.Errorf("the record is not whole in the store again: %v", err)
	}
	closeNode(t, n)

	log = logBuffer{}
	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if strings.Contains(log.String(), "left out") {
		t.Errorf("a start after the mend still speaks of a record left out:\n%s", log.String())
	}
	if got := commonsStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after a restart: %+v; want %+v", got, want)
	}
}

// TestDamagedRecordRepairedWhileStopped: a record left out as damaged,
// then written again while the node was stopped (commons repo repair
// --from), is applied at the next start.
func TestDamagedRecordRepairedWhileStopped(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, victim, want, peer := damagedRepo(t, dir, n)
	n, _ = startRepo(t, dir, key, nil)
	closeNode(t, n)
	onRepo(t, dir, func(st *badgerstore.Store) {
		rep, err := repo.Repair(t.Context(), st, bytes.NewReader(peer))
		if err != nil || rep.RepairedTotal != 1 || rep.Repaired[0] != victim.String() {
			t.Fatalf("repair from the peer's copy: %+v, %v", rep, err)
		}
	})
	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if !strings.Contains(log.String(), "whole again in the store: applied") {
		t.Errorf("the start did not say it applied the repaired record:\n%s", log.String())
	}
	if got := commonsStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after the repair: %+v; want %+v", got, want)
	}
}
