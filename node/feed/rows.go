package feed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// What a feed keeps in the store, so that a node starts without merging
// its records again: per commons, one row per status change and per
// contribution, and the counts by type. The node stores the rows with the
// commons' derived state (store.CommitDerived), in the same commit as the
// state they come from, under a prefix of its own; Load reads them back.
//
//	's' cursor seq   → contribution digest, from, to (status codes)
//	'c' cursor       → contribution digest, author, time, arrival status, kind
//	'n'              → the counts of records by type
//
// Cursors are 8 bytes and seqs 4, big-endian, so rows sort by position.
const (
	rowStatus  = 's'
	rowContrib = 'c'
	rowCounts  = 'n'
)

// Rows returns the rows the records just applied add (see Load).
func Rows(done []Applied) []store.Write {
	var ws []store.Write
	for _, a := range done {
		if a.Cursor == 0 {
			continue
		}
		k := 0
		var arrival uint8
		for _, ch := range a.Changes {
			if ch.From == "" {
				if ch.Contribution == a.Block.CID {
					arrival = statusCode(ch.To)
				}
				continue
			}
			k++
			d, _ := protocol.RecordDigest(ch.Contribution)
			key := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64([]byte{rowStatus}, a.Cursor), uint32(k))
			v := append(d[:], statusCode(ch.From), statusCode(ch.To))
			ws = append(ws, store.Write{Key: key, Value: v})
		}
		if c := a.Block.Record.Contribution(); c != nil {
			d, _ := protocol.RecordDigest(a.Block.CID)
			r := a.Block.Record
			v := append(d[:], r.Author[:]...)
			v = binary.BigEndian.AppendUint64(v, uint64(r.Time))
			v = append(append(v, arrival), c.Kind...)
			ws = append(ws, store.Write{Key: binary.BigEndian.AppendUint64([]byte{rowContrib}, a.Cursor), Value: v})
		}
	}
	return ws
}

// CountsRow returns the row of commons id's counts by type, as they stand.
func (h *Hub) CountsRow(id cid.Cid) store.Write {
	var v []byte
	if f := h.lookup(id); f != nil {
		f.mu.RLock()
		for t, n := range f.counts {
			v = binary.AppendUvarint(v, uint64(len(t)))
			v = append(v, t...)
			v = binary.AppendUvarint(v, n)
		}
		f.mu.RUnlock()
	}
	return store.Write{Key: []byte{rowCounts}, Value: v}
}

// Scanner reads rows by prefix, in key order (the store's ScanDerived,
// under the node's prefix).
type Scanner func(prefix []byte, fn func(key, value []byte) error) error

// ErrDamaged is wrapped by Load's error when a stored row does not decode.
var ErrDamaged = errors.New("feed: a stored row is damaged")

// Unload forgets commons id's feed (a node that found its rows damaged
// loads them again). It must have no subscribers.
func (h *Hub) Unload(id cid.Cid) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.commons, id)
}

// Load fills commons id's feed, which must be empty, from its rows: the
// feed of the records up to cursor head, as Added would have made it.
func (h *Hub) Load(id cid.Cid, head uint64, scan Scanner) error {
	f := h.feed(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.head != (Pos{}) {
		return fmt.Errorf("feed: load commons %s: its feed is not empty", id)
	}
	bad := func(what string, k []byte) error {
		return fmt.Errorf("%w: commons %s: %s row %x", ErrDamaged, id, what, k)
	}
	err := scan([]byte{rowStatus}, func(k, v []byte) error {
		if len(k) != 13 || len(v) != 34 || v[32] >= uint8(len(statuses)) || v[33] >= uint8(len(statuses)) {
			return bad("status", k)
		}
		pos := Pos{Cursor: binary.BigEndian.Uint64(k[1:]), Seq: int(binary.BigEndian.Uint32(k[9:]))}
		f.status = append(f.status, statusChange{pos: pos, con: protocol.Digest(v[:32]), from: v[32], to: v[33]})
		return nil
	})
	if err != nil {
		return err
	}
	err = scan([]byte{rowContrib}, func(k, v []byte) error {
		if len(k) != 9 || len(v) < 73 || v[72] >= uint8(len(statuses)) {
			return bad("contribution", k)
		}
		kind := string(v[73:])
		if x, ok := f.kinds[kind]; ok {
			kind = x
		} else {
			kind = strings.Clone(kind)
			f.kinds[kind] = kind
		}
		f.contribs = append(f.contribs, contrib{cursor: binary.BigEndian.Uint64(k[1:]), con: protocol.Digest(v[:32]),
			author: protocol.PublicKey(v[32:64]), time: protocol.HLC(binary.BigEndian.Uint64(v[64:72])), arrival: v[72], kind: kind})
		return nil
	})
	if err != nil {
		return err
	}
	err = scan([]byte{rowCounts}, func(k, v []byte) error {
		for len(v) > 0 {
			n, w := binary.Uvarint(v)
			if w <= 0 || uint64(len(v)-w) < n {
				return bad("counts", k)
			}
			t := protocol.Type(v[w : w+int(n)])
			v = v[w+int(n):]
			c, w := binary.Uvarint(v)
			if w <= 0 {
				return bad("counts", k)
			}
			v = v[w:]
			f.counts[t] = c
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.head = Pos{Cursor: head}
	if n := len(f.status); n > 0 && f.status[n-1].pos.Cursor == head {
		f.head.Seq = f.status[n-1].pos.Seq
	}
	if n := len(f.status); n > 0 && head < f.status[n-1].pos.Cursor {
		return fmt.Errorf("%w: commons %s: rows past its head %d", ErrDamaged, id, head)
	}
	f.pub = f.head
	return nil
}
