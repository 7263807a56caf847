//go:build !linux

package badgerstore

import (
	"fmt"
	"os"
)

// swapDirs exchanges the directories at a and b through a third name; a
// crash between its renames leaves a at a+".swap", which Open does not
// find (this is Linux's one step elsewhere).
func swapDirs(a, b string) error {
	t := a + ".swap"
	if err := os.Rename(a, t); err != nil {
		return err
	}
	if err := os.Rename(b, a); err != nil {
		_ = os.Rename(t, a)
		return err
	}
	if err := os.Rename(t, b); err != nil {
		return fmt.Errorf("%w (the old directory is at %s)", err, t)
	}
	return nil
}
