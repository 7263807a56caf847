//go:build linux

package testnet

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// nsTopo is the namespace testnet's map: a public segment 7.0.0.0/24 (a
// routable-looking range, so that libp2p treats it as the internet; it
// never leaves the namespaces) with the bootstrap host and a public peer,
// and two NAT routers, each masquerading a private LAN:
//
//	boot 7.0.0.2    c 7.0.0.3                      (public)
//	nat1 7.0.0.11 ── LAN 10.1.0.0/24: a1 .2, a2 .3
//	nat2 7.0.0.12 ── LAN 10.2.0.0/24: b1 .2, d  .3
type nsTopo struct {
	pub        *Segment
	nat1, nat2 *Router
	hosts      map[string]*Host
}

func newNsTopo(tb testing.TB, lab *Lab) *nsTopo {
	tb.Helper()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatalf("namespace testnet: %v", err)
		}
	}
	topo := &nsTopo{hosts: map[string]*Host{}}
	var err error
	topo.pub, err = lab.Switch("pub", netip.MustParsePrefix("7.0.0.0/24"))
	must(err)
	topo.nat1, err = lab.Router("nat1", topo.pub, netip.MustParseAddr("7.0.0.11"), netip.MustParsePrefix("10.1.0.0/24"))
	must(err)
	topo.nat2, err = lab.Router("nat2", topo.pub, netip.MustParseAddr("7.0.0.12"), netip.MustParsePrefix("10.2.0.0/24"))
	must(err)
	for _, h := range []struct {
		name string
		seg  *Segment
		addr string
	}{
		{"boot", topo.pub, "7.0.0.2"},
		{"c", topo.pub, "7.0.0.3"},
		{"a1", topo.nat1.LAN, "10.1.0.2"},
		{"a2", topo.nat1.LAN, "10.1.0.3"},
		{"b1", topo.nat2.LAN, "10.2.0.2"},
		{"d", topo.nat2.LAN, "10.2.0.3"},
	} {
		topo.hosts[h.name], err = lab.Host(h.name, h.seg, netip.MustParseAddr(h.addr))
		must(err)
	}
	return topo
}

// bootstrapFlags are the daemon flags naming nodes as bootstrap peers.
func bootstrapFlags(ds ...*nsDaemon) []string {
	var fs []string
	for _, d := range ds {
		for _, a := range d.addrs() {
			fs = append(fs, "--bootstrap", a)
		}
	}
	return fs
}

// bootProfile are the flags of a bootstrap node: the bootstrap profile,
// announcing its public addresses.
func bootProfile(d *nsDaemon) []string {
	fs := []string{"--profile", "bootstrap"}
	for _, a := range d.addrs() {
		fs = append(fs, "--announce", strings.TrimSuffix(a, "/p2p/"+d.id))
	}
	return fs
}

// nsEnv are the settings every daemon of the namespace testnet runs with:
// a periodic sync every 5s rather than 30s, to keep the test short.
var nsEnv = []string{"COMMONS_SYNC_INTERVAL=5s"}

// createCommons founds a commons on node d, naming boot as its bootstrap
// peer and maintainer as its maintainer, and returns its ID.
func createCommons(d, boot, maintainer *nsDaemon) string {
	d.n.tb.Helper()
	args := []string{"manifest", "create", "--name", "Netns testnet", "--licence", "CC-BY-SA-4.0",
		"--maintainer", maintainer.id, "--quorum", "1"}
	for _, a := range boot.addrs() {
		args = append(args, "--bootstrap", a)
	}
	return strings.TrimSpace(d.mustCLI(args...))
}

// TestNetns runs commons daemons on hosts in network namespaces: a public
// bootstrap node and peers behind two NAT routers. Peers on different
// private networks find each other through the bootstrap node and the DHT,
// replicate the commons, keep converging over a hole-punched connection
// when the bootstrap node stops, a peer with no bootstrap list finds its
// LAN by mDNS, and a partition heals with every record present. The log
// ends with "commons status" of each node: how it reaches the others.
func TestNetns(t *testing.T) {
	lab := newTestLab(t)
	s := &nsScenario{t: t, lab: lab, topo: newNsTopo(t, lab)}
	n := newNsNet(t, lab)
	h := s.topo.hosts
	s.boot, s.c, s.d = n.node("boot", h["boot"]), n.node("c", h["c"]), n.node("d", h["d"])
	s.a1, s.a2, s.b1 = n.node("a1", h["a1"]), n.node("a2", h["a2"]), n.node("b1", h["b1"])

	s.boot.start(bootProfile(s.boot), nsEnv...)
	s.commons = createCommons(s.boot, s.boot, s.a1)
	s.records = 1 // the genesis manifest

	s.acrossNATs()
	s.throughDHT()
	s.withoutBootstrap()
	s.mdnsOnLAN()
	s.partition()

	for _, x := range []*nsDaemon{s.boot, s.a1, s.a2, s.b1} {
		out, err := x.cli("status")
		t.Logf("commons status on %s:\n%s%s", x.name, out, errOrEmpty(err))
	}
	for _, x := range []*nsDaemon{s.boot, s.a1, s.a2, s.b1} {
		x.stop()
	}
}

// nsScenario is TestNetns' state from one step to the next.
type nsScenario struct {
	t       *testing.T
	lab     *Lab
	topo    *nsTopo
	commons string
	records int // how many records every node should end with

	boot, c, d, a1, a2, b1 *nsDaemon
}

// step logs the start of a step of the scenario.
func (s *nsScenario) step(what string) {
	s.t.Helper()
	s.t.Logf("--- %s", what)
}

// acrossNATs: a1 and b1, behind different NATs and knowing only the
// bootstrap node, replicate the commons, learn they are private, and end
// up connected directly by hole punching.
func (s *nsScenario) acrossNATs() {
	t, a1, b1 := s.t, s.a1, s.b1
	s.step("a1 and b1, behind nat1 and nat2, bootstrap from boot")
	a1.start(bootstrapFlags(s.boot), nsEnv...)
	b1.start(bootstrapFlags(s.boot), nsEnv...)
	a1.mustCLI("join", s.commons)
	b1.mustCLI("join", s.commons)
	first := b1.contribute(s.commons, "first from b1")
	s.records++
	made := time.Now()
	waitUntil(t, "a1 gets b1's contribution", 60*time.Second, func() error { return a1.hasRecord(first) })
	t.Logf("a1: b1's first record replicated %v after a1 started (%v after b1 made it)",
		time.Since(a1.startedAt()).Round(time.Millisecond), time.Since(made).Round(time.Millisecond))
	waitUntil(t, "boot, a1, b1 converge", 30*time.Second, func() error { return hasRecords(s.commons, s.records, s.boot, a1, b1) })

	checkReachability(t, s.boot, "public")
	checkReachability(t, a1, "private")
	checkReachability(t, b1, "private")
	waitUntil(t, "b1 holds a relay reservation", 120*time.Second, func() error {
		a, err := b1.relayed()
		if err == nil {
			t.Logf("b1 announces %s, %v after it started", a, time.Since(b1.startedAt()).Round(time.Millisecond))
		}
		return err
	})
	for _, x := range []*nsDaemon{a1, b1} {
		cs, err := x.conns(s.boot)
		t.Logf("%s reaches boot by %+v %s", x.name, cs, errOrEmpty(err))
	}
	waitUntil(t, "a1 connects to b1", 120*time.Second, func() error {
		cs, err := a1.conns(b1)
		if err == nil && len(cs) == 0 {
			err = errors.New("a1 has no connection to b1")
		}
		if err == nil {
			t.Logf("a1 reaches b1 first by %+v, %v after a1 started", cs, time.Since(a1.startedAt()).Round(time.Millisecond))
		}
		return err
	})
	waitUntil(t, "a1 and b1 connect directly (hole punching)", 120*time.Second, func() error {
		_, err := a1.direct(b1)
		return err
	})
	addr, _ := a1.direct(b1)
	t.Logf("a1 reaches b1 directly at %s, %v after a1 started", addr, time.Since(a1.startedAt()).Round(time.Millisecond))
	out := a1.mustCLI("status")
	if !statusShows(out, b1.id, "direct") {
		t.Errorf("commons status on a1 shows no direct connection to b1:\n%s", out)
	}
	t.Logf("commons status on a1:\n%s", out)
}

// statusShows reports whether the text of commons status has a line
// naming the peer and the word.
func statusShows(status, peer, word string) bool {
	for _, line := range strings.Split(status, "\n") {
		if strings.Contains(line, peer) && strings.Contains(line, word) {
			return true
		}
	}
	return false
}

// throughDHT: d knows only c, a public peer that is not a bootstrap node,
// and has mDNS off; it finds a1 (on another private network) and b1.
func (s *nsScenario) throughDHT() {
	t, c, d := s.t, s.c, s.d
	s.step("d, knowing only c, finds the commons' peers through the DHT")
	c.start(bootstrapFlags(s.boot), nsEnv...)
	c.mustCLI("join", s.commons)
	checkReachability(t, c, "public")
	d.start(bootstrapFlags(c), append([]string{"COMMONS_MDNS=false"}, nsEnv...)...)
	d.mustCLI("join", s.commons)
	took := waitUntil(t, "d finds a1 and b1 through the DHT", 90*time.Second, func() error {
		for _, o := range []*nsDaemon{s.a1, s.b1} {
			if cs, err := d.conns(o); err != nil || len(cs) == 0 {
				return fmt.Errorf("d has no connection to %s (%v)", o.name, err)
			}
		}
		return hasRecords(s.commons, s.records, s.a1, d)
	})
	t.Logf("d connected to a1 and b1 and replicated the commons %v after it joined", took.Round(time.Millisecond))
	c.stop()
	d.stop()
}

// withoutBootstrap: with boot (and every other node) stopped, a1 and b1
// keep converging over their direct connection.
func (s *nsScenario) withoutBootstrap() {
	t, a1, b1 := s.t, s.a1, s.b1
	s.step("boot stops; a1 and b1 keep converging")
	s.boot.stop()
	fromA := a1.contribute(s.commons, "a1 without boot")
	fromB := b1.contribute(s.commons, "b1 without boot")
	s.records += 2
	took := waitUntil(t, "a1 and b1 get each other's record without boot", 60*time.Second, func() error {
		if err := b1.hasRecord(fromA); err != nil {
			return err
		}
		return a1.hasRecord(fromB)
	})
	t.Logf("without boot, a record crossed between a1 and b1 within %v", took.Round(time.Millisecond))
	waitUntil(t, "a1, b1 converge without boot", 30*time.Second, func() error { return hasRecords(s.commons, s.records, a1, b1) })
	if _, err := a1.direct(b1); err != nil {
		t.Errorf("after boot stopped: %v", err)
	}
}

// mdnsOnLAN: a2 has no bootstrap list; boot is down, so only its LAN
// neighbour a1, found by mDNS, can give it the commons.
func (s *nsScenario) mdnsOnLAN() {
	t, a1, a2 := s.t, s.a1, s.a2
	s.step("a2, with no bootstrap list, finds a1 on its LAN by mDNS")
	a2.start(nil, nsEnv...)
	a2.mustCLI("join", s.commons)
	took := waitUntil(t, "a2 replicates through a1 on its LAN", 60*time.Second, func() error {
		return hasRecords(s.commons, s.records, a1, a2)
	})
	t.Logf("a2 replicated the commons %v after it joined", took.Round(time.Millisecond))
	if cs, err := a2.conns(a1); err != nil || len(cs) == 0 || !strings.HasPrefix(cs[0].Address, "/ip4/10.1.0.2/") {
		t.Errorf("a2 should reach a1 on LAN address 10.1.0.2: %v %v", cs, err)
	}
}

// partition brings the bootstrap node back, cuts nat2 (b1's network) off
// until b1's connections die, writes on both sides meanwhile, and checks
// every node ends with every record once the link is back.
func (s *nsScenario) partition() {
	t, a1, b1 := s.t, s.a1, s.b1
	s.step("boot restarts; nat2's link goes down, then up")
	s.boot.start(bootProfile(s.boot), nsEnv...)
	took := waitUntil(t, "boot back with every record", 90*time.Second, func() error {
		return hasRecords(s.commons, s.records, s.boot, a1, b1)
	})
	t.Logf("boot caught up %v after it restarted", took.Round(time.Millisecond))

	if err := s.lab.SetLink(s.topo.nat2.NS, "wan", false); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	inA := a1.contribute(s.commons, "a1 in partition")
	inB := b1.contribute(s.commons, "b1 in partition")
	s.records += 2
	took = waitUntil(t, "b1 loses every connection in the partition", 90*time.Second, func() error {
		st, err := b1.status()
		if err != nil {
			return err
		}
		if len(st.Connections) > 0 || st.Peers > 0 {
			return fmt.Errorf("b1 still has %d peers: %v", st.Peers, st.Connections)
		}
		return nil
	})
	t.Logf("partition: b1's connections died after %v", took.Round(time.Millisecond))
	if a1.hasRecord(inB) == nil || b1.hasRecord(inA) == nil {
		t.Fatalf("a record crossed the partition: the link is not cut")
	}
	if err := s.lab.SetLink(s.topo.nat2.NS, "wan", true); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	took = waitUntil(t, "partition heals with every record", 150*time.Second, func() error {
		return hasRecords(s.commons, s.records, s.boot, a1, s.a2, b1)
	})
	t.Logf("partition of %v healed %v after the link came back: %d records and one state root everywhere",
		healed.Sub(cut).Round(time.Second), took.Round(time.Millisecond), s.records)
}

// checkReachability waits until a node's AutoNAT reports the reachability.
func checkReachability(t testing.TB, d *nsDaemon, want string) {
	t.Helper()
	waitUntil(t, d.name+" reachability "+want, 90*time.Second, func() error {
		st, err := d.status()
		if err != nil {
			return err
		}
		if st.Reachability != want {
			return fmt.Errorf("%s reachability %q", d.name, st.Reachability)
		}
		return nil
	})
	t.Logf("%s: reachability %s, %v after its start", d.name, want, time.Since(d.startedAt()).Round(time.Millisecond))
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
