package badgerstore

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Table tags: the first byte of every key (see the package doc).
const (
	tagVersion = 'v'
	tagRecord  = 'r'
	tagBlob    = 'b'
	tagFeed    = 'F'
	tagHead    = 'h'
	tagCommons = 'c'
	tagMeta    = 'm'
	tagID      = 'i'

	tagDerived     = 'D'
	tagApplied     = 'a'
	tagJournal     = 'j'
	tagJournalDone = 'J'
	tagJournalOpen = 'o'

	// The tags of the feed log and the derived state in format 1, whose
	// keys named the commons by its CID (migrate.go).
	tagFeed1    = 'f'
	tagDerived1 = 'd'
)

func versionKey() []byte { return []byte{tagVersion} }

func metaKey(key string) []byte { return append([]byte{tagMeta}, key...) }

// cidKey returns tag followed by c's binary form.
func cidKey(tag byte, c cid.Cid) []byte {
	b := c.Bytes()
	k := make([]byte, 0, 1+len(b))
	return append(append(k, tag), b...)
}

func recordKey(c cid.Cid) []byte  { return cidKey(tagRecord, c) }
func blobKey(c cid.Cid) []byte    { return cidKey(tagBlob, c) }
func headKey(c cid.Cid) []byte    { return cidKey(tagHead, c) }
func commonsKey(c cid.Cid) []byte { return cidKey(tagCommons, c) }

// idKey is the key of a commons' short ID.
func idKey(c cid.Cid) []byte { return cidKey(tagID, c) }

// commonsPrefix returns tag followed by the commons' short ID as a
// uvarint: the prefix of its feed log ('F') or derived state ('D'). A
// uvarint is never the start of another, so no two commons' keys share a
// prefix. ID 0 is never given: a commons without an ID reads under it, and
// finds nothing.
func commonsPrefix(tag byte, id uint64) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+64)
	return binary.AppendUvarint(append(k, tag), id)
}

// feedKey returns the feed key of a cursor under a feed prefix.
func feedKey(prefix []byte, cursor uint64) []byte {
	return binary.BigEndian.AppendUint64(prefix[:len(prefix):len(prefix)], cursor)
}

func encodeUint(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// decodeUint reads what encodeUint wrote.
func decodeUint(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
