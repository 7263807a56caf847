package node

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
)

// TestKindFrameLimits checks each frame kind against its own limit: control
// frames may be larger than records (a turn at 100k records needs them to be).
func TestKindFrameLimits(t *testing.T) {
	tests := []struct {
		name string
		kind byte
		size int
		ok   bool
	}{
		{"control, large", protocol.SyncFrameControl, 200 << 10, true},
		{"control, at limit", protocol.SyncFrameControl, protocol.MaxSyncMessage, true},
		{"control, over limit", protocol.SyncFrameControl, protocol.MaxSyncMessage + 1, false},
		{"record, at limit", protocol.SyncFrameRecord, protocol.MaxRecordSize, true},
		{"record, over limit", protocol.SyncFrameRecord, protocol.MaxRecordSize + 1, false},
		{"unknown kind", 7, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeKindFrame(&buf, tt.kind, make([]byte, tt.size)); err != nil {
				t.Fatal(err)
			}
			kind, body, err := readKindFrame(bufio.NewReader(&buf))
			if tt.ok {
				if err != nil || kind != tt.kind || len(body) != tt.size {
					t.Fatalf("read = kind %d, %d bytes, %v", kind, len(body), err)
				}
				return
			}
			if !errors.Is(err, crdt.ErrSyncViolation) {
				t.Fatalf("read = %v, want a sync violation", err)
			}
		})
	}
}
