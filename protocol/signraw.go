package protocol

// signing returns the bytes b's signatures cover. They are the record's
// canonical encoding without its sig and cosigs entries (signingBytes),
// and b.Raw is that canonical encoding with them (Parse checks it, and a
// stored record hashes to the CID it was parsed under); so they are cut
// out of b.Raw rather than encoded again, which costs a fraction of it.
// When b.Raw is not a map of the shape a record has (a block built without
// its bytes), the record is encoded again.
func (b *Block) signing() ([]byte, error) {
	if s, ok := signingFromRaw(string(b.Record.Type()), b.Raw); ok {
		return s, nil
	}
	return b.Record.signingBytes()
}

// signingFromRaw returns SigningPrefix, typ and a newline, then raw's
// top-level map without its "sig" and "cosigs" entries; ok is false when
// raw is not a definite-length map of fewer than 24 entries, keyed by text
// of fewer than 24 bytes, whose items it can walk, taking up exactly raw.
//
// It is not a validator: it walks items only to find their ends, and
// trusts raw to be canonical, which Parse checked. Given bytes Parse did
// not accept, its result may differ from the record encoded again.
//
// Dropping entries of a canonical map leaves a canonical map: the others
// keep their order, and the header's count is the only byte that changes
// (a count below 24 is in the header byte itself).
func signingFromRaw(typ string, raw []byte) (_ []byte, ok bool) {
	if len(raw) == 0 || raw[0]>>5 != 5 || raw[0]&0x1f >= 24 {
		return nil, false
	}
	n := int(raw[0] & 0x1f)
	type span struct{ from, to int }
	var kept [24]span
	nk := 0
	off := 1
	for range n {
		start := off
		if off >= len(raw) || raw[off]>>5 != 3 || raw[off]&0x1f >= 24 {
			return nil, false // record keys are short text strings
		}
		klen := int(raw[off] & 0x1f)
		if off+1+klen > len(raw) {
			return nil, false
		}
		key := string(raw[off+1 : off+1+klen])
		if off = skipItem(raw, off+1+klen, 0); off < 0 {
			return nil, false
		}
		if key != "sig" && key != "cosigs" {
			kept[nk] = span{start, off}
			nk++
		}
	}
	if off != len(raw) {
		return nil, false
	}
	size := len(SigningPrefix) + len(typ) + 2
	for _, s := range kept[:nk] {
		size += s.to - s.from
	}
	out := make([]byte, 0, size)
	out = append(out, SigningPrefix...)
	out = append(out, typ...)
	out = append(out, '\n', 0xa0|byte(nk))
	for _, s := range kept[:nk] {
		out = append(out, raw[s.from:s.to]...)
	}
	return out, true
}

// maxSkipDepth bounds how deeply skipItem nests into arrays, maps and
// tags; a record nests far less.
const maxSkipDepth = 32

// skipItem returns the offset just past the CBOR data item at raw[off:],
// or -1 if it is not a whole definite-length item (or nests too deep).
func skipItem(raw []byte, off, depth int) int {
	if depth > maxSkipDepth || off >= len(raw) {
		return -1
	}
	major, info := raw[off]>>5, raw[off]&0x1f
	off++
	var arg uint64
	switch {
	case info < 24:
		arg = uint64(info)
	case info <= 27:
		w := 1 << (info - 24)
		if off+w > len(raw) {
			return -1
		}
		for _, c := range raw[off : off+w] {
			arg = arg<<8 | uint64(c)
		}
		off += w
	default:
		return -1 // indefinite lengths and reserved values: not DAG-CBOR
	}
	switch major {
	case 0, 1, 7: // integers, simple values and floats: the argument is all
		return off
	case 2, 3: // byte and text strings
		if arg > uint64(len(raw)-off) {
			return -1
		}
		return off + int(arg)
	case 4, 5: // arrays and maps
		items := arg
		if major == 5 {
			if items > uint64(len(raw)) {
				return -1
			}
			items *= 2
		}
		if items > uint64(len(raw)-off) { // each item takes a byte at least
			return -1
		}
		for range items {
			if off = skipItem(raw, off, depth+1); off < 0 {
				return -1
			}
		}
		return off
	default: // 6, a tag: its item follows
		return skipItem(raw, off, depth+1)
	}
}
