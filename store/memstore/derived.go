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
// keys in order.
type derived struct {
	kv      map[string][]byte
	keys    sortedKeys
	applied uint64
}

// sortedKeys keeps keys in order, in chunks of at most keysChunk, so that
// an insert or a delete moves a chunk, not every key.
type sortedKeys struct {
	chunks [][]string
}

const keysChunk = 512

// find returns the chunk and position of the first key not below k.
func (s *sortedKeys) find(k string) (int, int) {
	i, _ := slices.BinarySearchFunc(s.chunks, k, func(c []string, k string) int {
		return strings.Compare(c[len(c)-1], k)
	})
	if i == len(s.chunks) {
		return i, 0
	}
	j, _ := slices.BinarySearch(s.chunks[i], k)
	return i, j
}

// insert adds k, which is not there.
func (s *sortedKeys) insert(k string) {
	i, j := s.find(k)
	if i == len(s.chunks) {
		if i == 0 || len(s.chunks[i-1]) >= keysChunk {
			s.chunks = append(s.chunks, []string{k})
			return
		}
		i--
		j = len(s.chunks[i])
	}
	c := slices.Insert(s.chunks[i], j, k)
	if len(c) > keysChunk {
		h := len(c) / 2
		s.chunks = slices.Insert(s.chunks, i+1, slices.Clone(c[h:]))
		c = slices.Clip(c[:h])
	}
	s.chunks[i] = c
}

// remove deletes k, which is there.
func (s *sortedKeys) remove(k string) {
	i, j := s.find(k)
	if i == len(s.chunks) || j >= len(s.chunks[i]) || s.chunks[i][j] != k {
		return
	}
	if s.chunks[i] = slices.Delete(s.chunks[i], j, j+1); len(s.chunks[i]) == 0 {
		s.chunks = slices.Delete(s.chunks, i, i+1)
	}
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
			switch {
			case w.Delete && had:
				delete(st.kv, k)
				st.keys.remove(k)
			case !w.Delete:
				if !had {
					st.keys.insert(k)
				}
				st.kv[k] = append([]byte{}, w.Value...)
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

// ScanDerived implements store.Store. It reads the keys a chunk at a
// time under the read lock, and calls fn without it.
func (s *Store) ScanDerived(ctx context.Context, commons cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error {
	p := string(prefix)
	start := max(p, string(from))
	for {
		s.mu.RLock()
		if err := s.begin(ctx); err != nil {
			s.mu.RUnlock()
			return err
		}
		d := s.derivedOf(commons, false)
		if d == nil {
			s.mu.RUnlock()
			return nil
		}
		var keys []string
		var values [][]byte
		i, j := d.keys.find(start)
	collect:
		for ; i < len(d.keys.chunks); i, j = i+1, 0 {
			for _, k := range d.keys.chunks[i][j:] {
				if !strings.HasPrefix(k, p) || len(keys) == keysChunk {
					break collect
				}
				keys = append(keys, k)
				values = append(values, bytes.Clone(d.kv[k]))
			}
		}
		s.mu.RUnlock()
		for n, k := range keys {
			if err := fn([]byte(k), values[n]); err != nil {
				return err
			}
		}
		if len(keys) < keysChunk {
			return nil
		}
		start = keys[len(keys)-1] + "\x00"
	}
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
