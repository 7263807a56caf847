package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/commons-p2p/commons/store"
)

// StoreFormat is the layout of what a node keeps in its store that this
// version reads and writes. A store records the format it was written in
// (store meta "format"); Start refuses a store of a newer format, whose
// layout this version does not know, rather than misread or damage it.
// A store without the key was written before formats were recorded, in
// format 1.
const StoreFormat = 1

// formatKey is the store meta key of the store's format.
const formatKey = "format"

// ErrStoreFormat: the store was written by a newer version of commons.
var ErrStoreFormat = errors.New("node: store written by a newer version")

// checkFormat reads the store's format, refuses a newer one, and records
// this version's on a store that has none yet.
func (n *Node) checkFormat(ctx context.Context) error {
	raw, err := n.st.GetMeta(ctx, formatKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := n.st.PutMeta(ctx, formatKey, []byte(strconv.Itoa(StoreFormat))); err != nil {
			return fmt.Errorf("node: record the store's format: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("node: read the store's format: %w", err)
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return fmt.Errorf("node: the store's format is %q, not a version number: the store is damaged", raw)
	}
	if v > StoreFormat {
		return fmt.Errorf("%w: its format is %d, and this version of commons reads format %d at most; run a newer commons on this repo", ErrStoreFormat, v, StoreFormat)
	}
	return nil
}
