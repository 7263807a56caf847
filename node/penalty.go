package node

import (
	"errors"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
)

// Peers that misbehave are shut out for a while: a peer gossiping an
// invalid record (gossipsub validates before it forwards, so an honest peer
// never does), or breaking the sync protocol or sending invalid records in
// syncStrikes sessions within strikeWindow, is banned for banFor: its
// connections are closed, new ones closed as they come, its sessions
// refused and none started with it.
const (
	syncStrikes  = 3
	strikeWindow = 10 * time.Minute
	banFor       = time.Hour
	maxPenalised = 4096 // peers remembered, banned or with strikes
)

// errInvalidRecord wraps the error of a session that carried an invalid
// record.
var errInvalidRecord = errors.New("invalid record")

type penalties struct {
	mu      sync.Mutex
	bans    map[peer.ID]time.Time // until when
	strikes map[peer.ID][]time.Time
}

// banned reports whether p is banned now. Any goroutine.
func (n *Node) banned(p peer.ID) bool {
	n.pen.mu.Lock()
	defer n.pen.mu.Unlock()
	until, ok := n.pen.bans[p]
	if ok && !time.Now().Before(until) {
		delete(n.pen.bans, p)
		return false
	}
	return ok
}

// ban shuts p out for banFor and closes its connections, saying why.
// Any goroutine.
func (n *Node) ban(p peer.ID, why string) {
	n.pen.mu.Lock()
	if n.pen.bans == nil {
		n.pen.bans = map[peer.ID]time.Time{}
	}
	_, was := n.pen.bans[p]
	if !was && len(n.pen.bans) >= maxPenalised {
		n.pen.bans = map[peer.ID]time.Time{} // bounded: forget the oldest bans with the rest
	}
	n.pen.bans[p] = time.Now().Add(banFor)
	delete(n.pen.strikes, p)
	n.pen.mu.Unlock()
	if !was {
		n.log.Warn("peer banned: disconnected, and refused for an hour", "peer", p, "why", why)
	}
	if n.host != nil {
		_ = n.host.Network().ClosePeer(p)
	}
}

// strike counts a session with p that broke the protocol or carried an
// invalid record (err), and bans p at syncStrikes within strikeWindow.
// Errors of other kinds (a timeout, a reset) are no strike. Any goroutine.
func (n *Node) strike(p peer.ID, err error) {
	if !errors.Is(err, crdt.ErrSyncViolation) && !errors.Is(err, errInvalidRecord) || errors.Is(err, protocol.ErrUnknownType) {
		return // a record of a type a newer version knows is no strike
	}
	now := time.Now()
	n.pen.mu.Lock()
	if n.pen.strikes == nil || len(n.pen.strikes) >= maxPenalised {
		n.pen.strikes = map[peer.ID][]time.Time{}
	}
	s := append(n.pen.strikes[p], now)
	for len(s) > 0 && now.Sub(s[0]) > strikeWindow {
		s = s[1:]
	}
	n.pen.strikes[p] = s
	count := len(s)
	n.pen.mu.Unlock()
	if count >= syncStrikes {
		n.ban(p, "sync: broke the protocol or sent invalid records in several sessions: "+err.Error())
	}
}

// inspectScores bans the peers whose gossip score fell below the
// graylist threshold: one invalid record does it (topicScoreParams).
func (n *Node) inspectScores(scores map[peer.ID]*pubsub.PeerScoreSnapshot) {
	limit := peerScoreThresholds().GraylistThreshold
	for p, s := range scores {
		if s.Score < limit && !n.banned(p) {
			n.ban(p, "gossip: sent an invalid record")
		}
	}
}
