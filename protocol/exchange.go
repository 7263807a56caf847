package protocol

import "fmt"

// Exchange protocol limits.
const (
	// MaxExchangeMessage caps one framed exchange message, in bytes.
	MaxExchangeMessage = 1 << 20
	// MaxExchangeBatch caps the CIDs in one cids or want message.
	MaxExchangeBatch = 1024
)

// ExchangeMsg is one control message of the exchange protocol
// (ExchangeProtocol): a request naming a commons, a batch of CIDs the
// server holds, a batch of CIDs the client wants, or the end of a phase.
// Exactly one of its fields is set.
type ExchangeMsg struct {
	Commons *Link  `cbor:"commons,omitempty"`
	CIDs    []Link `cbor:"cids,omitempty"`
	Want    []Link `cbor:"want,omitempty"`
	Done    bool   `cbor:"done,omitempty"`
}

// EncodeExchange encodes an exchange message canonically.
func EncodeExchange(m *ExchangeMsg) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return encMode.Marshal(m)
}

// DecodeExchange decodes and checks an exchange message.
func DecodeExchange(b []byte) (*ExchangeMsg, error) {
	if len(b) > MaxExchangeMessage {
		return nil, fmt.Errorf("protocol: exchange message of %d bytes, limit %d", len(b), MaxExchangeMessage)
	}
	var m ExchangeMsg
	if err := decMode.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("protocol: exchange message: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *ExchangeMsg) check() error {
	set := 0
	if m.Commons != nil {
		set++
	}
	if len(m.CIDs) > 0 {
		set++
	}
	if len(m.Want) > 0 {
		set++
	}
	if m.Done {
		set++
	}
	if set != 1 {
		return fmt.Errorf("protocol: exchange message sets %d fields, want exactly 1", set)
	}
	if len(m.CIDs) > MaxExchangeBatch || len(m.Want) > MaxExchangeBatch {
		return fmt.Errorf("protocol: exchange batch over %d CIDs", MaxExchangeBatch)
	}
	return nil
}
