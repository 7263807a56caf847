package feed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Ahead holds the contribution rows and the 't' rows of a range of a
// commons' cursors, read side by side with the scan of a feed page's
// summary rows (ReadAhead), for Summaries and Statuses to take rather
// than scan those rows one kind after another.
//
// A page read each kind of row in a scan of its own, one after the
// other: its summaries, its contributions' rows (to complete their
// summaries), the same rows again and its 't' rows (for their statuses).
// A scan seeks in a table at every level of the store, and on a store the
// page cache does not hold each seek waits on the disk: four such waits a
// page, one after the other, where the rows read ahead make it one.
//
// The rows read ahead are taken only with a tail taken before any save
// was Saved since the reads began (the commons' epoch, which Saved and a
// backfill move on): a save stored after a read ahead passed its place,
// and then let go of from the tail, would be in neither. A save stored
// meanwhile but not Saved is in the tail still, which a page takes over
// the rows. A summary row stored meanwhile may have its contribution row
// stored after the read ahead passed its place: Summaries then scans
// those rows. Otherwise, or if a read ahead failed, the rows are scanned
// as without it, and that scan reports what is wrong.
type Ahead struct {
	f           *commonsFeed
	after, last uint64 // the range of cursors, after excluded
	epoch       uint64 // f's, when the reads began

	cancel context.CancelFunc
	cdone  chan struct{} // closed once contribs and cerr are set
	ndone  chan struct{} // closed once now and nerr are set

	contribs []contrib // the stored contribution rows after after, through min(f's saved cursor then, last)
	cerr     error
	now      []nowCode // the 't' rows after after, through last
	nerr     error
}

// nowCode is a 't' row: the status code of the contribution at cursor.
type nowCode struct {
	cursor uint64
	code   uint8
}

// ReadAhead starts reading commons id's contribution rows and 't' rows
// after cursor after, through cursor last, each in a goroutine of its
// own, and returns at once; nil (which Summaries and Statuses take, and
// Close) if the hub does not hold the commons or the range is empty. The
// caller calls Close once done with it.
func (h *Hub) ReadAhead(ctx context.Context, id cid.Cid, after, last uint64) *Ahead {
	f := h.lookup(id)
	if f == nil || last <= after {
		return nil
	}
	f.mu.RLock()
	saved, epoch := f.saved, f.epoch
	f.mu.RUnlock()
	ctx, cancel := context.WithCancel(ctx)
	a := &Ahead{f: f, after: after, last: last, epoch: epoch,
		cancel: cancel, cdone: make(chan struct{}), ndone: make(chan struct{})}
	go func() {
		defer close(a.cdone)
		defer recovered(&a.cerr)
		if upto := min(saved, last); after < upto {
			a.contribs, a.cerr = h.scanContribs(ctx, f, after, upto, int(upto-after))
		}
	}()
	go func() {
		defer close(a.ndone)
		defer recovered(&a.nerr)
		a.now, a.nerr = h.scanNow(ctx, f, after+1, last)
	}()
	return a
}

// recovered, deferred, makes a panic of the read ahead's goroutine (a
// store's read may panic on a damaged page) its error: the rows are then
// scanned on the caller's goroutine, where the request's handler answers
// for it.
func recovered(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("feed: read ahead: panic: %v", r)
	}
}

// Close cancels the reads' context (a store may finish a scan under way)
// and waits for them to end.
func (a *Ahead) Close() {
	if a == nil {
		return
	}
	a.cancel()
	<-a.cdone
	<-a.ndone
}

// covers reports whether a read ahead of commons f at epoch its rows from
// cursor first through cursor last. (At the same epoch, the saved cursor
// is the same: the stored contribution rows a caller asks for end where
// those read ahead do.)
func (a *Ahead) covers(f *commonsFeed, epoch, first, last uint64) bool {
	return a != nil && a.f == f && a.epoch == epoch && first > a.after && last <= a.last
}

// read waits until done is closed, and reports whether the read it ends
// succeeded (*err nil); false if ctx ended first.
func read(ctx context.Context, done <-chan struct{}, err *error) bool {
	select {
	case <-done:
		return *err == nil
	case <-ctx.Done():
		return false
	}
}

// contribRows returns commons f's stored contribution rows after cursor
// after, through cursor upto, up to limit of them, as read ahead; ok false
// if they were not (another commons or range, a save since, a failed
// read), or ctx ended first. epoch is f's, taken with the tail the rows go
// with.
func (a *Ahead) contribRows(ctx context.Context, f *commonsFeed, epoch, after, upto uint64, limit int) (rows []contrib, ok bool) {
	if !a.covers(f, epoch, after+1, upto) || !read(ctx, a.cdone, &a.cerr) {
		return nil, false
	}
	for _, c := range a.contribs {
		if len(rows) == limit || c.cursor > upto {
			break
		}
		if c.cursor > after {
			rows = append(rows, c)
		}
	}
	return rows, true
}

// nowRows returns commons f's 't' rows from cursor first through cursor
// last, as read ahead; ok false if they were not (another commons or
// range, a save since, a failed read), or ctx ended first. epoch is f's,
// taken with the tail the rows go with.
func (a *Ahead) nowRows(ctx context.Context, f *commonsFeed, epoch, first, last uint64) (rows []nowCode, ok bool) {
	if !a.covers(f, epoch, first, last) || !read(ctx, a.ndone, &a.nerr) {
		return nil, false
	}
	for _, r := range a.now {
		if r.cursor > last {
			break
		}
		if r.cursor >= first {
			rows = append(rows, r)
		}
	}
	return rows, true
}

// scanNow returns commons f's 't' rows from cursor first through cursor
// last, in cursor order, read in one scan.
func (h *Hub) scanNow(ctx context.Context, f *commonsFeed, first, last uint64) ([]nowCode, error) {
	var out []nowCode
	err := h.log.ScanDerived(ctx, f.id, []byte{RowPrefix, rowNow}, nowKey(first), func(k, v []byte) error {
		if len(k) != 10 || len(v) != 1 || v[0] == 0 || v[0] >= uint8(len(statuses)) {
			return fmt.Errorf("%w: commons %s: status row %x", ErrDamaged, f.id, k[1:])
		}
		c := binary.BigEndian.Uint64(k[2:])
		if c > last {
			return errDone
		}
		out = append(out, nowCode{cursor: c, code: v[0]})
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return nil, err
	}
	return out, nil
}
