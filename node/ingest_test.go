package node

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
)

// slowDisk is a store whose group commits wait until the test lets them
// through, as a slow fsync would.
type slowDisk struct {
	store.Store
	entered chan int      // a commit of so many entries started
	release chan struct{} // lets one commit through
	fail    error         // if set, what a commit returns
}

func (d *slowDisk) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	d.entered <- len(es)
	select {
	case <-d.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.fail != nil {
		return nil, d.fail
	}
	return d.Store.PutRecords(ctx, es)
}

// The event loop does not wait for the disk: while a group commit is
// stuck, the node still answers reads, and the records being committed are
// acknowledged only once the commit is done, then visible at once. Records
// that arrive meanwhile form the next batch.
func TestCommitOffTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		disk := &slowDisk{Store: memstore.New(), entered: make(chan int, 4), release: make(chan struct{})}
		n, err := New(Config{Offline: true, Store: disk, Key: testKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		ctx := t.Context()

		created := make(chan error, 1)
		go func() {
			_, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("Slow disk"), Licence: ptr("MIT")})
			created <- err
		}()
		if k := <-disk.entered; k != 1 {
			t.Fatalf("first commit of %d records, want 1", k)
		}
		synctest.Wait()
		select {
		case err := <-created:
			t.Fatalf("manifest acknowledged before its commit finished (err %v)", err)
		default:
		}
		// The loop answers while the commit waits.
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatalf("status during a commit: %v", err)
		}
		if len(st.Commons) != 1 || st.Commons[0].Records != 0 {
			t.Fatalf("status during the commit: %+v; want the commons joined, its genesis not yet applied", st.Commons)
		}
		disk.release <- struct{}{}
		if err := <-created; err != nil {
			t.Fatal(err)
		}
		st, err = n.Status(ctx)
		if err != nil || len(st.Commons) != 1 || st.Commons[0].Records != 1 {
			t.Fatalf("after the commit: %+v, %v; want the genesis applied", st, err)
		}

		// A failed commit is an error for its requests, and nothing of it
		// is applied.
		disk.fail = errors.New("disk full")
		go func() { disk.release <- struct{}{} }()
		_, err = n.Contribute(ctx, api.ContributeParams{Commons: st.Commons[0].ID, Title: "lost"})
		<-disk.entered
		if !errors.Is(err, disk.fail) {
			t.Fatalf("contribute on a failing disk: %v, want the disk's error", err)
		}
		st, err = n.Status(ctx)
		if err != nil || st.Commons[0].Records != 1 {
			t.Fatalf("after a failed commit: %+v, %v; want only the genesis", st, err)
		}
	})
}
