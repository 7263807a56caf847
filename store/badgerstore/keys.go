package badgerstore

import (
	"encoding/binary"

	"github.com/ipfs/go-cid"
)

// Table tags: the first byte of every key (see the package doc).
const (
	tagVersion = 'v'
	tagRecord  = 'r'
	tagBlob    = 'b'
	tagFeed    = 'f'
	tagHead    = 'h'
	tagCommons = 'c'
	tagMeta    = 'm'

	tagDerived     = 'd'
	tagApplied     = 'a'
	tagJournal     = 'j'
	tagJournalDone = 'J'
	tagJournalOpen = 'o'
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

// feedPrefix returns 'f', the length of the commons CID, and the CID. CIDs
// of commons are far shorter than 256 bytes (a sha2-256 CIDv1 has 36).
func feedPrefix(commons cid.Cid) []byte {
	b := commons.Bytes()
	k := make([]byte, 0, 2+len(b)+8)
	return append(append(k, tagFeed, byte(len(b))), b...)
}

// feedKey returns the feed key of a cursor in a commons.
func feedKey(commons cid.Cid, cursor uint64) []byte {
	return binary.BigEndian.AppendUint64(feedPrefix(commons), cursor)
}

func encodeUint(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
