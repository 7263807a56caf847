//go:build linux

package testnet

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkNetnsFirstRecord measures, in the namespace testnet, how long a
// peer behind NAT takes from its start to holding the first record of a
// commons that only another peer behind another NAT has: the bootstrap
// node replicates nothing, so a1 must find b1 through the DHT, reach it
// through the bootstrap node's relay, and sync either over a hole-punched
// connection or, with COMMONS_HOLE_PUNCHING=false on both, not at all if
// the node keeps sync off relayed connections (it reports +Inf then).
// b1 holds its relay reservation before a1 starts.
//
//	go test -run '^$' -bench NetnsFirstRecord -benchtime 1x -v ./testnet
func BenchmarkNetnsFirstRecord(b *testing.B) {
	for _, hp := range []bool{true, false} {
		b.Run(fmt.Sprintf("hole_punching=%v", hp), func(b *testing.B) {
			var total float64
			for range b.N {
				if d := firstRecord(b, hp); d == time.Duration(math.MaxInt64) {
					total = math.Inf(1)
				} else {
					total += d.Seconds()
				}
			}
			b.ReportMetric(total/float64(b.N), "s/first-record")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// firstRecordCap is how long firstRecord waits for the record.
const firstRecordCap = 90 * time.Second

func firstRecord(b *testing.B, holePunching bool) time.Duration {
	b.StopTimer()
	lab := newTestLab(b)
	topo := newNsTopo(b, lab)
	n := newNsNet(b, lab)
	boot, a1, b1 := n.node("boot", topo.hosts["boot"]), n.node("a1", topo.hosts["a1"]), n.node("b1", topo.hosts["b1"])
	env := append([]string{fmt.Sprintf("COMMONS_HOLE_PUNCHING=%v", holePunching)}, nsEnv...)
	boot.start(bootProfile(boot), nsEnv...)
	b1.start(bootstrapFlags(boot), env...)
	commons := createCommons(b1, boot, b1)
	first := b1.contribute(commons, "first from b1")
	checkReachability(b, b1, "private")
	waitUntil(b, "b1 holds a relay reservation", 300*time.Second, func() error {
		_, err := b1.relayed()
		return err
	})
	b.Logf("b1 holds a relay reservation %v after it started", time.Since(b1.startedAt()).Round(time.Millisecond))

	b.StartTimer()
	a1.start(bootstrapFlags(boot), env...)
	a1.mustCLI("join", commons)
	_, err := waitFor(firstRecordCap, func() error { return a1.hasRecord(first) })
	took := time.Since(a1.startedAt())
	b.StopTimer()
	cs, cerr := a1.conns(b1)
	if err != nil {
		b.Logf("hole punching %v: a1 (behind nat1) did not get b1's first record: %v; a1's connections to b1: %+v %s",
			holePunching, err, cs, errOrEmpty(cerr))
		took = time.Duration(math.MaxInt64)
	} else {
		b.Logf("hole punching %v: a1 (behind nat1) held b1's first record %v after it started; a1's connections to b1: %+v %s",
			holePunching, took.Round(time.Millisecond), cs, errOrEmpty(cerr))
	}
	for _, d := range []*nsDaemon{a1, b1, boot} {
		d.stop()
	}
	return took
}

// BenchmarkNetnsBootstrap50 measures the bootstrap node with 50 peers: its
// connections and resident memory once 50 daemons behind ten home routers
// (five each, mDNS off so that they do not mesh on their LANs) have
// joined the commons through it, replicated it, and reserved a relay slot
// on it.
//
//	go test -run '^$' -bench NetnsBootstrap50 -benchtime 1x -v ./testnet
func BenchmarkNetnsBootstrap50(b *testing.B) {
	const peers = 50
	for range b.N {
		b.StopTimer()
		lab := newTestLab(b)
		topo := newNsTopo(b, lab)
		n := newNsNet(b, lab)
		boot := n.node("boot", topo.hosts["boot"])
		boot.start(bootProfile(boot), nsEnv...)
		commons := createCommons(boot, boot, boot)
		boot.contribute(commons, "first from boot")
		idle, err := boot.rss()
		if err != nil {
			b.Fatal(err)
		}
		ds := nsHomes(b, lab, topo.pub, n, peers)
		b.StartTimer()
		started := time.Now()
		for _, d := range ds {
			d.start(bootstrapFlags(boot), append([]string{"COMMONS_MDNS=false"}, nsEnv...)...)
			d.mustCLI("join", commons)
		}
		waitUntil(b, "50 peers replicate the commons", 180*time.Second, func() error { return hasRecords(commons, 2, ds...) })
		b.StopTimer()
		b.Logf("50 peers started and replicated in %v", time.Since(started).Round(time.Millisecond))
		// Let AutoNAT run and the peers reserve their relay slots.
		reserved := 0
		_, err = waitFor(300*time.Second, func() error {
			reserved = 0
			for _, d := range ds {
				if _, err := d.relayed(); err == nil {
					reserved++
				}
			}
			if reserved < peers {
				return fmt.Errorf("%d of %d peers hold a relay reservation", reserved, peers)
			}
			return nil
		})
		b.Logf("relay reservations: %d of %d peers, %v after they started %s", reserved, peers, time.Since(started).Round(time.Second), errOrEmpty(err))
		st, err := boot.status()
		if err != nil {
			b.Fatal(err)
		}
		rss, err := boot.rss()
		if err != nil {
			b.Fatal(err)
		}
		relayed := 0
		for _, c := range st.Connections {
			if c.Relayed {
				relayed++
			}
		}
		b.Logf("bootstrap node with %d peers: %d peers, %d connections (%d relayed), RSS %d KiB (%d KiB before the peers)",
			peers, st.Peers, len(st.Connections), relayed, rss, idle)
		b.ReportMetric(float64(len(st.Connections)), "conns")
		b.ReportMetric(float64(rss)/1024, "MiB-RSS")
		b.ReportMetric(float64(idle)/1024, "MiB-RSS-idle")
		b.ReportMetric(0, "ns/op")
		for _, d := range append(ds, boot) {
			d.stop()
		}
	}
}

// nsHomes makes peers nodes (not started) behind ten more NAT routers on
// the public segment, r0 to r9 at 7.0.0.100-109, each with a LAN
// 10.(100+r).0.0/24. Ten public addresses rather than two: go-libp2p's
// resource manager accepts at most 8 connections from one IPv4 address.
func nsHomes(tb testing.TB, lab *Lab, pub *Segment, n *nsNet, peers int) []*nsDaemon {
	tb.Helper()
	const routers = 10
	var lans []*Segment
	for r := range routers {
		wan := netip.AddrFrom4([4]byte{7, 0, 0, byte(100 + r)})
		lan := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + r), 0, 0}), 24)
		rt, err := lab.Router(fmt.Sprintf("r%d", r), pub, wan, lan)
		if err != nil {
			tb.Fatal(err)
		}
		lans = append(lans, rt.LAN)
	}
	var ds []*nsDaemon
	for i := range peers {
		lan := lans[i%routers]
		a := lan.Prefix.Addr().As4()
		a[3] = byte(2 + i/routers)
		name := fmt.Sprintf("p%02d", i)
		h, err := lab.Host(name, lan, netip.AddrFrom4(a))
		if err != nil {
			tb.Fatal(err)
		}
		ds = append(ds, n.node(name, h))
	}
	return ds
}
