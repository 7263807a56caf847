package protocol

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
)

// CARWriter writes records as a CARv1 stream: a header naming its roots,
// then one section per record (varint length, CID, bytes). It keeps nothing
// of what it wrote, so a stream of any length costs the same memory; it
// leaves deduplication to its caller.
type CARWriter struct {
	w   io.Writer
	buf []byte
}

// NewCARWriter writes a CARv1 header with the given roots to w and returns
// the writer of its sections.
func NewCARWriter(w io.Writer, roots ...cid.Cid) (*CARWriter, error) {
	// The header is the DAG-CBOR map {"roots": [CID...], "version": 1},
	// keys in canonical order (shorter first).
	h := []byte{0xa2, 0x65, 'r', 'o', 'o', 't', 's'}
	h = appendCBORHead(h, 4, uint64(len(roots)))
	for _, r := range roots {
		b := r.Bytes()
		h = append(h, 0xd8, 42) // tag 42: a CID
		h = appendCBORHead(h, 2, uint64(len(b)+1))
		h = append(h, 0x00) // the identity multibase prefix
		h = append(h, b...)
	}
	h = append(h, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01)
	c := &CARWriter{w: w}
	if err := c.section(nil, h); err != nil {
		return nil, fmt.Errorf("protocol: CAR header: %w", err)
	}
	return c, nil
}

// Put writes one section: the record's CID and bytes.
func (c *CARWriter) Put(id cid.Cid, data []byte) error {
	if err := c.section(id.Bytes(), data); err != nil {
		return fmt.Errorf("protocol: CAR section %s: %w", id, err)
	}
	return nil
}

func (c *CARWriter) section(prefix, data []byte) error {
	c.buf = binary.AppendUvarint(c.buf[:0], uint64(len(prefix)+len(data)))
	c.buf = append(c.buf, prefix...)
	c.buf = append(c.buf, data...)
	_, err := c.w.Write(c.buf)
	if cap(c.buf) > 1<<20 {
		c.buf = nil
	}
	return err
}

// appendCBORHead appends a CBOR head of major type major and argument n.
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}
