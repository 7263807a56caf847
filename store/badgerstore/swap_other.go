//go:build !linux

package badgerstore

import (
	"errors"
	"fmt"
	"os"
)

// errSwapHalfDone: swapDirs moved a directory and could not finish nor
// undo it; its error names where each one is.
var errSwapHalfDone = errors.New("the store directories were left half exchanged")

// swapDirs exchanges the directories at a and b through a third name
// (a+".swap"): on these systems not in one step, so a crash between its
// renames leaves the old store at a+".swap" and none at a. An error not
// wrapping errSwapHalfDone means that nothing moved.
func swapDirs(a, b string) error {
	t := a + ".swap"
	if err := os.Rename(a, t); err != nil {
		return err
	}
	if err := os.Rename(b, a); err != nil {
		if uerr := os.Rename(t, a); uerr != nil {
			return fmt.Errorf("%w: the old store is at %s, the new one at %s: move the old one back to %s (%v; %v)", errSwapHalfDone, t, b, a, err, uerr)
		}
		return err
	}
	if err := os.Rename(t, b); err != nil {
		return fmt.Errorf("%w: the new store is in place; the old one is at %s: delete it (%v)", errSwapHalfDone, t, err)
	}
	return nil
}

// canSwap: the fallback needs only renames.
func canSwap(string) error { return nil }
