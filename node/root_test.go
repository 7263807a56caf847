package node

import (
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
)

// While records arrive, status does not hash the trie again sooner than
// rootShare times the last hashing took: it answers with the last root
// and says how many records that root is of. Once due, or once no record
// came since, the root is that of every record held.
func TestStatusRootWhileRecordsArrive(t *testing.T) {
	defer func(d, m time.Duration) { idleHashDelay, hashDeferMax = d, m }(idleHashDelay, hashDeferMax)
	idleHashDelay, hashDeferMax = time.Hour, time.Hour // no hashing but status's
	n, cs := startRepo(t, t.TempDir(), testKey(t), nil)
	defer closeNode(t, n)
	id := foundTestCommons(t, n, n.Self())
	contribute := func(title string) {
		t.Helper()
		must[string](t)(n.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: title}))
	}
	status := func() api.CommonsStatus {
		t.Helper()
		st := must[api.StatusInfo](t)(n.Status(t.Context()))
		if len(st.Commons) != 1 {
			t.Fatalf("%d commons in status", len(st.Commons))
		}
		return st.Commons[0]
	}
	// tookLast sets how long the last root took to compute, as if the
	// trie were large.
	tookLast := func(d time.Duration) {
		t.Helper()
		if err := n.do(t.Context(), func() { n.commons[id].root.took = d }); err != nil {
			t.Fatal(err)
		}
	}

	contribute("first")
	first := status()
	if first.StateRootRecords != first.Records || first.Records != 2 {
		t.Fatalf("an idle node's status: root of %d records, %d held; want both 2", first.StateRootRecords, first.Records)
	}
	tookLast(time.Hour)
	contribute("second")
	scans := cs.trieScans.Load()
	busy := status()
	if busy.Records != 3 || busy.StateRootRecords != 2 || busy.StateRoot != first.StateRoot {
		t.Errorf("a status within rootShare×(an hour) of the last root: %d records, root %s of %d; want 3 records, the root %s of 2",
			busy.Records, busy.StateRoot, busy.StateRootRecords, first.StateRoot)
	}
	if got := cs.trieScans.Load() - scans; got != 0 {
		t.Errorf("that status read %d trie leaves", got)
	}

	tookLast(0)
	due := status()
	if due.Records != 3 || due.StateRootRecords != 3 || due.StateRoot == first.StateRoot {
		t.Errorf("a status once the root is due: %d records, root %s of %d; want a new root of all 3", due.Records, due.StateRoot, due.StateRootRecords)
	}
	// The same set: the same root, whatever the last one cost.
	tookLast(time.Hour)
	if again := status(); again.StateRoot != due.StateRoot || again.StateRootRecords != 3 {
		t.Errorf("no record since: root %s of %d, want %s of 3", again.StateRoot, again.StateRootRecords, due.StateRoot)
	}
}
