package node

import (
	"time"

	"github.com/commons-p2p/commons/crdt"
)

// rootCache is the state root a replica last computed: of how many
// records, when, and how long it took.
type rootCache struct {
	root    crdt.Root
	records int
	at      time.Time
	took    time.Duration
	set     bool
}

// rootShare bounds the loop's time spent hashing for status while records
// arrive: a root that took d to compute is not computed again within
// rootShare×d, and status answers with it meanwhile, with the number of
// records it is the root of. Hashing reads every trie leaf changed since
// the last root (a few tens of microseconds each): during a join, a
// status polled every 50 ms would otherwise read about one leaf per
// record arrived, on the loop (a join of 300,000 records polled so took a
// quarter longer).
const rootShare = 20

// rootNow returns the commons' state root and the number of records it
// is the root of: the current one when no record came since it was last
// computed (the set only grows, so the same size is the same set) or when
// computing it is due, else the last one (status says so). Loop only.
func (rep *replica) rootNow() (crdt.Root, int) {
	c := &rep.root
	if c.set && (c.records == rep.state.Len() || time.Since(c.at) < rootShare*c.took) {
		return c.root, c.records
	}
	return rep.hashRoot()
}

// hashRoot computes the commons' state root now, and keeps it for
// rootNow. Loop only, or once it has stopped.
func (rep *replica) hashRoot() (crdt.Root, int) {
	start := time.Now()
	n := rep.state.Len()
	r := rep.state.Root()
	if rep.state.Err() != nil {
		return r, n // the zero root; the node stops (checkStates)
	}
	rep.root = rootCache{root: r, records: n, at: time.Now(), took: time.Since(start), set: true}
	return r, n
}
