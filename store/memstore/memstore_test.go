package memstore_test

import (
	"testing"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
	"github.com/commons-p2p/commons/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}

func BenchmarkPutRecords(b *testing.B) {
	storetest.BenchmarkPutRecords(b, func(b *testing.B) store.Store { return memstore.New() })
}
