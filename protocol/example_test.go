package protocol_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/commons-p2p/commons/protocol"
)

// ExampleSign founds a commons: a genesis manifest signed by its only
// association key. Keys come from a fixed seed and the time is fixed, so
// the bytes and the CID are the same on every run.
func ExampleSign() {
	key := protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{0x01}, 32))
	r := &protocol.Record{
		Time: protocol.HLCFromMillis(1_700_000_000_000, 0),
		Body: &protocol.Manifest{
			Name:        "Example commons",
			Licence:     "CC-BY-SA-4.0",
			Association: []protocol.PublicKey{key.Public()},
			Threshold:   1,
		},
	}
	if err := protocol.Sign(r, key); err != nil {
		fmt.Println(err)
		return
	}
	raw, id, err := protocol.Encode(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("author:", r.Author)
	fmt.Println("bytes:", len(raw))
	fmt.Println("commons:", id)
	fmt.Println("topic:", protocol.Topic(id))
	// Output:
	// author: 12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5
	// bytes: 246
	// commons: bafyreiemc7whie2xesbryx4iuo5mvkyxaydfi7my3eyq7hgyuwyrhln6ny
	// topic: /commons/1.0.0/records/bafyreiemc7whie2xesbryx4iuo5mvkyxaydfi7my3eyq7hgyuwyrhln6ny
}

// ExampleParse receives bytes from the network: Validate parses and checks
// them and verifies the signature; a changed byte makes them invalid, with an
// error that names the field and wraps a sentinel.
func ExampleParse() {
	key := protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{0x01}, 32))
	r := &protocol.Record{
		Time: protocol.HLCFromMillis(1_700_000_000_000, 0),
		Body: &protocol.Manifest{
			Name: "Example commons", Licence: "CC-BY-SA-4.0",
			Association: []protocol.PublicKey{key.Public()}, Threshold: 1,
		},
	}
	if err := protocol.Sign(r, key); err != nil {
		fmt.Println(err)
		return
	}
	raw, _, _ := protocol.Encode(r)

	b, err := protocol.Validate(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Record.Type(), b.Record.IsGenesis(), b.Record.Manifest().Name, b.CID)

	// Change one byte of the licence: the record still parses, but the
	// signature no longer verifies.
	tampered := bytes.Replace(raw, []byte("CC-BY-SA"), []byte("CC-BY-NC"), 1)
	_, err = protocol.Validate(tampered)
	var fe *protocol.FieldError
	fmt.Println(errors.Is(err, protocol.ErrBadSignature), errors.As(err, &fe) && fe.Field == "sig", protocol.Permanent(err))

	// Append a byte: the bytes are no longer one DAG-CBOR block.
	_, err = protocol.Parse(append(raw, 0))
	fmt.Println(errors.Is(err, protocol.ErrMalformed))
	// Output:
	// manifest true Example commons bafyreiemc7whie2xesbryx4iuo5mvkyxaydfi7my3eyq7hgyuwyrhln6ny
	// true true true
	// true
}
