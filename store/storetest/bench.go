package storetest

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// BenchRecordSize is the size in bytes of the fake records that
// BenchmarkPutRecords writes, about that of a signed contribution.
const BenchRecordSize = 512

// BenchmarkPutRecords measures PutRecords with batches of 1, 64 and 1024
// new records of BenchRecordSize bytes, and reports ns/record. Each
// sub-benchmark gets a fresh store from newStore; it is closed afterwards.
func BenchmarkPutRecords(b *testing.B, newStore func(b *testing.B) store.Store) {
	for _, n := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := newStore(b)
			defer s.Close()
			commons := CommonsID("bench")
			ctx := context.Background()
			var seq uint64
			batch := make([]store.Entry, n)
			b.SetBytes(int64(n * BenchRecordSize))
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for i := range batch {
					seq++
					raw := make([]byte, BenchRecordSize)
					binary.BigEndian.PutUint64(raw, seq)
					batch[i] = store.Entry{CID: protocol.RecordCID(raw), Commons: commons, Raw: raw}
				}
				b.StartTimer()
				cursors, err := s.PutRecords(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				if cursors[n-1] != seq {
					b.Fatalf("last cursor %d, want %d", cursors[n-1], seq)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
