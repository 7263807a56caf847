package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/commons-p2p/commons/store/memstore"
)

// releasingStore is a memstore that records the calls of ReleasePages.
type releasingStore struct {
	*memstore.Store
	mu      sync.Mutex
	budgets []int64
	fail    bool
}

func (s *releasingStore) ReleasePages(ctx context.Context, budget int64) (int64, int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budgets = append(s.budgets, budget)
	if s.fail {
		return 0, 0, false, errors.New("no /proc here")
	}
	return 2 * budget, budget / 2, true, nil
}

func (s *releasingStore) calls() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.budgets...)
}

// A running node asks a store that can release the pages of its files to
// do so every pageCheck with pageBudget, an offline one (an import) as
// well, and stops asking once it stops; a store that cannot is still
// asked, and the node keeps running.
func TestNodeReleasesStorePages(t *testing.T) {
	for _, fail := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			st := &releasingStore{Store: memstore.New(), fail: fail}
			n, err := New(Config{Offline: true, Store: st, Key: testKey(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10*pageCheck + pageCheck/2)
			got := st.calls()
			if len(got) != 10 {
				t.Errorf("fail=%v: %d calls in %v, want 10 (one every %v)", fail, len(got), 10*pageCheck+pageCheck/2, pageCheck)
			}
			for _, b := range got {
				if b != pageBudget {
					t.Fatalf("fail=%v: budget %d, want %d", fail, b, pageBudget)
				}
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * pageCheck)
			if after := st.calls(); len(after) != len(got) {
				t.Errorf("fail=%v: %d calls after Close", fail, len(after)-len(got))
			}
		})
	}
}
