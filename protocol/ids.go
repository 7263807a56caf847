package protocol

import "github.com/ipfs/go-cid"

// Protocol and topic identifiers.
const (
	// TopicPrefix begins every commons' gossipsub topic; the commons ID
	// (the genesis manifest CID, base32) follows.
	TopicPrefix = "/commons/1.0.0/records/"
	// ExchangeProtocol is the stream protocol for the full record exchange
	// with a peer (see SPEC.md).
	ExchangeProtocol = "/commons/exchange/1.0.0"
)

// Topic returns the gossipsub topic name of a commons.
func Topic(commons cid.Cid) string { return TopicPrefix + commons.String() }
