package node

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store/memstore"
)

// Below the disk margin the node stores nothing and says why, keeps
// answering reads, and stores again by itself once space returns.
func TestDiskMargin(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	n, err := New(Config{Offline: true, Store: memstore.New(), Key: testKey(t),
		FreeSpace: func() (uint64, error) { return free.Load(), nil }, DiskMargin: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := t.Context()
	id := foundTestCommons(t, n).String()
	before, err := n.Contribute(ctx, api.ContributeParams{Commons: id, Title: "before"})
	if err != nil {
		t.Fatal(err)
	}

	free.Store(10 << 20)
	if _, err := n.Contribute(ctx, api.ContributeParams{Commons: id, Title: "while full"}); !errors.Is(err, api.ErrDiskFull) {
		t.Fatalf("contribute with 10 MiB free and a 64 MiB margin: %v; want ErrDiskFull", err)
	}
	if _, err := n.PutBlob(ctx, []byte("payload")); !errors.Is(err, api.ErrDiskFull) {
		t.Fatalf("store a blob on a full disk: %v; want ErrDiskFull", err)
	}
	if _, err := n.Show(ctx, before); err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}
	if st, err := n.Status(ctx); err != nil || st.Commons[0].Records != 2 {
		t.Fatalf("status on a full disk: %+v, %v; want the 2 records stored before", st, err)
	}

	free.Store(1 << 30)
	if _, err := n.Contribute(ctx, api.ContributeParams{Commons: id, Title: "after"}); err != nil {
		t.Fatalf("contribute once space returned: %v", err)
	}
}
