package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/store"
)

// derived is one commons' derived state: its keys and values, and its
// keys sorted (nil when a write made them stale).
type derived struct {
	kv      map[string][]byte
	sorted  []string
	applied uint64
}

func (s *Store) derivedOf(c cid.Cid, create bool) *derived {
	d := s.derived[c]
	if d == nil && create {
		if s.derived == nil {
			s.derived = map[cid.Cid]*derived{}
		}
		d = &derived{kv: map[string][]byte{}}
		s.derived[c] = d
	}
	return d
}

// CommitDerived implements store.Store.
func (s *Store) CommitDerived(ctx context.Context, ds []store.Derived) error {
	for i, d := range ds {
		if !d.Commons.Defined() {
			return fmt.Errorf("memstore: derived state %d: undefined commons", i)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	for _, d := range ds {
		st := s.derivedOf(d.Commons, true)
		for _, w := range d.Writes {
			k := string(w.Key)
			_, had := st.kv[k]
			if w.Delete {
				delete(st.kv, k)
			} else {
				st.kv[k] = append([]byte{}, w.Value...)
			}
			if had == w.Delete {
				st.sorted = nil
			}
		}
		st.applied = d.Applied
	}
	return nil
}

// Applied implements store.Store.
func (s *Store) Applied(ctx context.Context, commons cid.Cid) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	if d := s.derivedOf(commons, false); d != nil {
		return d.applied, nil
	}
	return 0, nil
}

// GetDerived implements store.Store.
func (s *Store) GetDerived(ctx context.Context, commons cid.Cid, key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	if d := s.derivedOf(commons, false); d != nil {
		if v, ok := d.kv[string(key)]; ok {
			return bytes.Clone(v)[:len(v):len(v)], nil
		}
	}
	return nil, nil
}

// ScanDerived implements store.Store. It holds the write lock, to sort
// the keys when a write made them stale.
func (s *Store) ScanDerived(ctx context.Context, commons cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error {
	s.mu.Lock()
	if err := s.begin(ctx); err != nil {
		s.mu.Unlock()
		return err
	}
	d := s.derivedOf(commons, false)
	if d == nil {
		s.mu.Unlock()
		return nil
	}
	if d.sorted == nil {
		d.sorted = make([]string, 0, len(d.kv))
		for k := range d.kv {
			d.sorted = append(d.sorted, k)
		}
		slices.Sort(d.sorted)
	}
	p := string(prefix)
	i, _ := slices.BinarySearch(d.sorted, max(p, string(from)))
	var keys []string
	var values [][]byte
	for ; i < len(d.sorted) && strings.HasPrefix(d.sorted[i], p); i++ {
		keys = append(keys, d.sorted[i])
		values = append(values, bytes.Clone(d.kv[d.sorted[i]]))
	}
	s.mu.Unlock()
	for j, k := range keys {
		if err := fn([]byte(k), values[j]); err != nil {
			return err
		}
	}
	return nil
}

// ReadDerived implements store.Store. The view reads the store as it is
// at each read.
func (s *Store) ReadDerived(ctx context.Context, commons cid.Cid) (store.DerivedView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	return memView{s: s, id: commons}, nil
}

type memView struct {
	s  *Store
	id cid.Cid
}

func (v memView) Get(key []byte) ([]byte, error) {
	return v.s.GetDerived(context.Background(), v.id, key)
}

func (v memView) Scan(prefix, from []byte, fn func(key, value []byte) error) error {
	return v.s.ScanDerived(context.Background(), v.id, prefix, from, fn)
}

func (memView) Close() {}
