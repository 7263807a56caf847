package repo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// RepairReport is what Repair did.
type RepairReport struct {
	Read          int      `json:"read"`           // records read from the file
	Repaired      []string `json:"repaired"`       // CIDs of the records written again, the first maxListed
	RepairedTotal int      `json:"repaired_total"` // records written again
	Unusable      int      `json:"unusable"`       // blocks of the file whose bytes do not hash to their CID
}

const maxListed = 100

// recordRepairer is a store that can write a damaged record's bytes again
// (badgerstore.Store).
type recordRepairer interface {
	RepairRecord(ctx context.Context, c cid.Cid, raw []byte) (bool, error)
}

// Repair reads a CAR of records, such as a file a peer wrote with
// commons export, and for every record of it that st holds damaged,
// writes the file's bytes in their place. Records st does not hold are
// not added (commons import does that), and blocks of the file whose
// bytes do not hash to their CID are counted and left out. It streams the
// file, in memory that does not grow with it.
func Repair(ctx context.Context, st store.Store, r io.Reader) (RepairReport, error) {
	rep := RepairReport{Repaired: []string{}}
	rr, ok := st.(recordRepairer)
	if !ok {
		return rep, errors.New("this store cannot repair records")
	}
	br, err := carv2.NewBlockReader(bufio.NewReaderSize(r, 256<<10), carv2.WithTrustedCAR(true), carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
	if err != nil {
		return rep, fmt.Errorf("not a CAR file: %w", err)
	}
	for {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			return rep, nil
		}
		if err != nil {
			return rep, fmt.Errorf("the CAR file is damaged after %d records: %w", rep.Read+rep.Unusable, err)
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		c, raw := blk.Cid(), blk.RawData()
		if !protocol.RecordCID(raw).Equals(c) {
			rep.Unusable++
			continue
		}
		rep.Read++
		fixed, err := rr.RepairRecord(ctx, c, raw)
		if err != nil {
			return rep, err
		}
		if fixed {
			rep.RepairedTotal++
			if len(rep.Repaired) < maxListed {
				rep.Repaired = append(rep.Repaired, c.String())
			}
		}
	}
}
