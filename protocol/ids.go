package protocol

import "github.com/ipfs/go-cid"

// Protocol and topic identifiers.
const (
	// TopicPrefix begins every commons' gossipsub topic; the commons ID
	// (the genesis manifest CID, base32) follows.
	TopicPrefix = "/commons/1.0.0/records/"
)

// Topic returns the gossipsub topic name of a commons.
func Topic(commons cid.Cid) string { return TopicPrefix + commons.String() }

// MessageID returns the gossipsub message ID of a message on topic whose
// data is an encoded record: the topic, a NUL byte, and the binary form of
// the record's CID (RecordCID over the data, as cid.Cid.KeyString gives
// it). Two peers publishing the same record on a topic produce the same
// ID, so pubsub delivers it once; the same bytes sent on another topic
// (where they are refused as another commons' record) have another ID, so
// that refusal does not stick to the record on its own topic.
func MessageID(topic string, data []byte) string {
	return topic + "\x00" + RecordCID(data).KeyString()
}
