package sim

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections between members in different partition
// groups.
type gater struct {
	net  *Net
	self peer.ID
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.net.reachable(g.self, p) }

func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.net.reachable(g.self, p)
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// reachable reports whether a and b are on the same side of the current
// partition.
func (n *Net) reachable(a, b peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.groups[a] == n.groups[b]
}

func linkKey(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

// Connect connects members i and j and remembers the link, so that Heal and
// Restart dial it again. It fails the test if the dial fails.
func (n *Net) Connect(i, j int) {
	n.t.Helper()
	if i == j {
		n.t.Fatalf("sim: connect %d to itself", i)
	}
	n.links[linkKey(i, j)] = true
	if err := n.dial(i, j); err != nil {
		n.t.Fatalf("sim: connect %d to %d: %v", i, j, err)
	}
}

// dial connects member i's host to member j's, clearing the dial backoff
// that an earlier failure (a partition, a restart) left behind.
func (n *Net) dial(i, j int) error {
	a, b := n.member(i), n.member(j)
	if a.host == nil || b.host == nil {
		return fmt.Errorf("member %d or %d is stopped", i, j)
	}
	if s, ok := a.host.Network().(*swarm.Swarm); ok {
		s.Backoff().Clear(b.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.Timeout)
	defer cancel()
	return a.host.Connect(ctx, peer.AddrInfo{ID: b.id, Addrs: []ma.Multiaddr{b.addr}})
}

// Disconnect closes the connections between members i and j and forgets
// their link.
func (n *Net) Disconnect(i, j int) {
	n.t.Helper()
	delete(n.links, linkKey(i, j))
	if h := n.member(i).host; h != nil {
		_ = h.Network().ClosePeer(n.member(j).id)
	}
}

// ConnectAll connects every pair of the given members; with none given,
// every pair of running nodes.
func (n *Net) ConnectAll(members ...int) {
	n.t.Helper()
	if len(members) == 0 {
		members = n.Running()
	}
	for a := range members {
		for b := a + 1; b < len(members); b++ {
			n.Connect(members[a], members[b])
		}
	}
}

// ConnectRing connects the given members in a ring, each to the next and
// the last to the first; with none given, the running nodes.
func (n *Net) ConnectRing(members ...int) {
	n.t.Helper()
	if len(members) == 0 {
		members = n.Running()
	}
	if len(members) < 2 {
		return
	}
	for k := range members {
		next := members[(k+1)%len(members)]
		if len(members) == 2 && k == 1 {
			break
		}
		n.Connect(members[k], next)
	}
}

// ConnectStar connects center to every other given member; with none
// given, to every other running node.
func (n *Net) ConnectStar(center int, members ...int) {
	n.t.Helper()
	if len(members) == 0 {
		members = n.Running()
	}
	for _, m := range members {
		if m != center {
			n.Connect(center, m)
		}
	}
}

// Partition splits the network: members in different groups cannot
// connect, and their connections are closed now. Members named in no group
// form one more group together. Links made with Connect are kept, to be
// redialled by Heal.
func (n *Net) Partition(groups ...[]int) {
	n.t.Helper()
	n.mu.Lock()
	n.groups = map[peer.ID]int{}
	for g, ms := range groups {
		for _, i := range ms {
			n.groups[n.member(i).id] = g + 1
		}
	}
	n.mu.Unlock()
	for _, a := range n.members {
		if a.host == nil {
			continue
		}
		for _, p := range a.host.Network().Peers() {
			if !n.reachable(a.id, p) {
				_ = a.host.Network().ClosePeer(p)
			}
		}
	}
}

// Heal ends a partition and redials every link made with Connect whose two
// ends are running.
func (n *Net) Heal() {
	n.t.Helper()
	n.mu.Lock()
	n.groups = map[peer.ID]int{}
	n.mu.Unlock()
	n.redial(func(int, int) bool { return true })
}

// redial dials again the links that match, whose ends are running and
// reachable and not already connected.
func (n *Net) redial(match func(i, j int) bool) {
	n.t.Helper()
	keys := make([][2]int, 0, len(n.links))
	for k := range n.links {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		i, j := k[0], k[1]
		a, b := n.members[i], n.members[j]
		if !match(i, j) || a.host == nil || b.host == nil || !n.reachable(a.id, b.id) {
			continue
		}
		if a.host.Network().Connectedness(b.id) == network.Connected {
			continue
		}
		if err := n.dial(i, j); err != nil {
			n.t.Fatalf("sim: redial %d to %d: %v", i, j, err)
		}
	}
}

// ConnectEdges connects the given pairs of members, all dials at once, and
// remembers the links as Connect does. It fails the test if a dial fails.
func (n *Net) ConnectEdges(edges [][2]int) {
	n.t.Helper()
	for _, e := range edges {
		n.links[linkKey(e[0], e[1])] = true
	}
	var wg sync.WaitGroup
	errs := make([]error, len(edges))
	for k, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = n.dial(e[0], e[1])
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			n.t.Fatalf("sim: connect %v: %v", edges[k], err)
		}
	}
}

// RandomEdges returns a connected topology of members 0 to n-1, drawn from
// seed: a ring plus extra random links, about degree links per member in
// all. Each pair is listed once, lower index first.
func RandomEdges(n, degree int, seed uint64) [][2]int {
	rng := rand.New(rand.NewPCG(seed, 0xed9e))
	seen := map[[2]int]bool{}
	var out [][2]int
	add := func(i, j int) {
		if i == j {
			return
		}
		k := linkKey(i, j)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for i := range n {
		add(i, (i+1)%n)
	}
	for i := range n {
		for range max(0, degree-2) / 2 {
			add(i, rng.IntN(n))
		}
	}
	return out
}
