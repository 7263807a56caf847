package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/protocol"
)

// MediaTypeCAR is the media type of a CAR file: an export, or a draft
// bundle (a drafted manifest, then the manifests of its commons, so that a
// member whose node does not replicate the commons can co-sign it).
const MediaTypeCAR = "application/vnd.ipld.car"

// MaxDraftSize bounds a draft bundle's bytes.
const MaxDraftSize = 16 << 20

// draftType is the media type of a bare record or a draft bundle.
func draftType(raw []byte) string {
	if len(raw) > 0 && raw[0]>>5 == 5 {
		return MediaTypeCBOR
	}
	return MediaTypeCAR
}

// DraftRecord returns the drafted record of a draft file: the file itself
// if it is a bare record, else the root of the draft bundle, which comes
// first. It reads the whole bundle, so that a file cut short fails; it
// checks no signature (the node validates what it is given).
func DraftRecord(file []byte) ([]byte, error) {
	if draftType(file) == MediaTypeCBOR {
		return file, nil
	}
	br, err := carv2.NewBlockReader(bytes.NewReader(file), carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
	if err != nil {
		return nil, fmt.Errorf("draft: neither a record nor a CAR file: %w", err)
	}
	var root []byte
	for n := 0; ; n++ {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("draft: the file is damaged after %d records: %w", n, err)
		}
		if n == 0 {
			root = blk.RawData()
		}
	}
	if root == nil {
		return nil, errors.New("draft: an empty CAR file")
	}
	return root, nil
}
