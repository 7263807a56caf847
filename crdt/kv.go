package crdt

import (
	"bytes"
	"slices"
	"strings"
)

// KV is where a State keeps what it derives of each contribution and
// review: their classes, statuses and votes, the lists that find them
// again (reviews by target, by Under and by author, contributions by
// licence, records by what they wait for), the inert records and the
// counts. A State reads it through this interface and never writes it: it
// hands the writes a batch of records implies to its caller (State.Ready),
// who applies them, with the records, before telling the State so
// (State.Advance). Until then the State reads its own pending writes
// first.
//
// The keys are the State's own; a caller keeping several States in one
// store gives each its own prefix.
type KV interface {
	// Get returns the value stored under key, or nil if there is none
	// (a stored value is never nil, though it may be empty).
	Get(key []byte) ([]byte, error)
	// Scan calls fn with each key that starts with prefix and is not less
	// than from (nil: every key under prefix), and its value, in ascending
	// byte order, until fn returns an error, which Scan returns. fn must
	// not keep key or value after it returns.
	Scan(prefix, from []byte, fn func(key, value []byte) error) error
}

// ManyKV is a KV that reads several keys faster at once than one after
// another: a store on a disk reads them side by side. A State reads
// through GetMany where it needs several keys it can name before reading
// any (the reviews of a contribution, in Standing).
type ManyKV interface {
	KV
	// GetMany returns the values stored under keys, in their order: nil
	// where there is none, as Get.
	GetMany(keys [][]byte) ([][]byte, error)
}

// Write is one change to a KV: Value stored under Key, or Key deleted.
type Write struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// MemKV is a KV in memory, ordered by key. The zero value is empty and
// ready. It is not safe for concurrent use.
type MemKV struct {
	m      map[string][]byte
	chunks [][]string // the keys, sorted, in chunks of at most memChunk
}

const memChunk = 256

// Get implements KV.
func (m *MemKV) Get(key []byte) ([]byte, error) { return m.m[string(key)], nil }

// Len returns the number of keys.
func (m *MemKV) Len() int { return len(m.m) }

// Scan implements KV.
func (m *MemKV) Scan(prefix, from []byte, fn func(key, value []byte) error) error {
	p := string(prefix)
	i, j := m.find(max(p, string(from)))
	for ; i < len(m.chunks); i, j = i+1, 0 {
		for _, k := range m.chunks[i][j:] {
			if !strings.HasPrefix(k, p) {
				return nil
			}
			if err := fn([]byte(k), m.m[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// find returns the chunk and position of the first key not below k.
func (m *MemKV) find(k string) (int, int) {
	i, _ := slices.BinarySearchFunc(m.chunks, k, func(c []string, k string) int {
		return strings.Compare(c[len(c)-1], k)
	})
	if i == len(m.chunks) {
		return i, 0
	}
	j, _ := slices.BinarySearch(m.chunks[i], k)
	return i, j
}

// Apply applies writes in order.
func (m *MemKV) Apply(ws []Write) {
	if m.m == nil {
		m.m = map[string][]byte{}
	}
	for _, w := range ws {
		k := string(w.Key)
		_, had := m.m[k]
		if w.Delete {
			if had {
				delete(m.m, k)
				i, j := m.find(k)
				m.chunks[i] = slices.Delete(m.chunks[i], j, j+1)
				if len(m.chunks[i]) == 0 {
					m.chunks = slices.Delete(m.chunks, i, i+1)
				}
			}
			continue
		}
		m.m[k] = bytes.Clone(w.Value)
		if had {
			continue
		}
		i, j := m.find(k)
		if i == len(m.chunks) {
			if i == 0 {
				m.chunks = append(m.chunks, nil)
			}
			i = len(m.chunks) - 1
			j = len(m.chunks[i])
		}
		m.chunks[i] = slices.Insert(m.chunks[i], j, k)
		if c := m.chunks[i]; len(c) > memChunk {
			h := len(c) / 2
			m.chunks = slices.Insert(m.chunks, i+1, slices.Clone(c[h:]))
			m.chunks[i] = c[:h:h]
		}
	}
}
