package crdt

import (
	"fmt"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// What a thief holding an association key (revoked or not) can make a
// node compute, record by record as the node adds them. Each benchmark
// op adds the whole attack to a fresh state; report ns/op against the
// attack's size. Compare sizes side by side in one run:
//
//	go test -run '^$' -bench 'Attack' -benchtime 3x ./crdt

// signedBy encodes r by author with co-signers and no signature: crdt
// trusts its caller to have verified them.
func signedBy(b *testing.B, r *protocol.Record, author protocol.PublicKey, cosigners ...protocol.PublicKey) *protocol.Block {
	r.Author = author
	for _, k := range cosigners {
		r.Cosigs = append(r.Cosigs, protocol.Cosig{Key: k})
	}
	blk, err := protocol.NewBlock(r)
	if err != nil {
		b.Fatal(err)
	}
	return blk
}

// freshKey returns the i-th key outside the test key pool.
func freshKey(i int) protocol.PublicKey {
	seed := make([]byte, 32)
	seed[0], seed[1], seed[2], seed[31] = byte(i>>16), byte(i>>8), byte(i), 0xfe
	return protocol.NewPrivateKeyFromSeed(seed).Public()
}

func benchAttack(b *testing.B, setup func(b *testing.B) (*State, []*protocol.Block)) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		s, bs := setup(b)
		b.StartTimer()
		mustAdd(b, s, bs...)
	}
}

// BenchmarkAttackSelfRevokingForks: N forks from the genesis by stolen key
// 2, each revoking key 2: every fork attacks every other; with the honest
// revocation of key 2, all are rejected, without it all are contested.
func BenchmarkAttackSelfRevokingForks(b *testing.B) {
	for _, honest := range []bool{false, true} {
		for _, n := range []int{250, 500, 1000} {
			b.Run(fmt.Sprintf("revoked=%v/forks=%d", honest, n), func(b *testing.B) {
				benchAttack(b, func(b *testing.B) (*State, []*protocol.Block) {
					g := genesisBlock(b, manifest([]int{0, 2}, 1, []int{1}, 1, 1), 0)
					s := New(g.CID)
					mustAdd(b, s, g)
					if honest {
						rm := manifest([]int{0}, 1, []int{1}, 1, 1)
						rm.Revoked = pubs(2)
						mustAdd(b, s, update(b, g.CID, 5, rm, 1, []cid.Cid{g.CID}, 0))
					}
					var bs []*protocol.Block
					for i := range n {
						m := manifest([]int{2}, 1, []int{3}, 1, 1)
						m.Name, m.Revoked = fmt.Sprint("fork ", i), pubs(2)
						m.Prev, m.Version = links(g.CID), 1
						bs = append(bs, signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: m}, key(2).Public()))
					}
					return s, bs
				})
			})
		}
	}
}

// BenchmarkAttackRejectedChildren: one fork by the revoked key 2 appoints a
// fresh key, which signs N children of it: all rejected. With bans, each
// child also bans the same 256 keys (what a ban costs must not grow with
// the candidates banning a key).
func BenchmarkAttackRejectedChildren(b *testing.B) {
	var ks []protocol.PublicKey // with bans: the keys every child bans
	for i := range protocol.MaxKeys {
		ks = append(ks, freshKey(5000+i))
	}
	slices.SortFunc(ks, protocol.PublicKey.Compare)
	for _, bans := range []bool{false, true} {
		for _, n := range []int{5000, 10000, 20000} {
			b.Run(fmt.Sprintf("bans=%v/children=%d", bans, n), func(b *testing.B) {
				benchAttack(b, func(b *testing.B) (*State, []*protocol.Block) {
					gm := manifest([]int{0, 2}, 1, []int{1}, 1, 1)
					gm.Policy = &protocol.Policy{Bans: true}
					g := genesisBlock(b, gm, 0)
					rm := manifest([]int{0}, 1, []int{1}, 1, 1)
					rm.Revoked = pubs(2)
					s := New(g.CID)
					mustAdd(b, s, g, update(b, g.CID, 5, rm, 1, []cid.Cid{g.CID}, 0))
					x := freshKey(1)
					f := signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
						Name: "f", Licence: "MIT", Association: []protocol.PublicKey{x}, Threshold: 1, Prev: links(g.CID), Version: 1,
					}}, key(2).Public())
					bs := []*protocol.Block{f}
					for i := range n {
						m := &protocol.Manifest{
							Name: fmt.Sprint("c", i), Licence: "MIT", Association: []protocol.PublicKey{x}, Threshold: 1, Prev: links(f.CID), Version: 2,
						}
						if bans {
							m.Banned = ks
						}
						bs = append(bs, signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: m}, x))
					}
					return s, bs
				})
			})
		}
	}
}

// BenchmarkAttackWideForks: 16 forks by key 2 appoint 256 fresh keys; then
// N updates name all 16, are signed by all 256 and revoke them all, so
// that each attacks every other through 256 keys (each record near the
// size limit).
func BenchmarkAttackWideForks(b *testing.B) {
	var xs []protocol.PublicKey
	for i := range 256 {
		xs = append(xs, freshKey(1000+i))
	}
	slices.SortFunc(xs, protocol.PublicKey.Compare)
	for _, n := range []int{25, 50, 100} {
		b.Run(fmt.Sprintf("updates=%d", n), func(b *testing.B) {
			benchAttack(b, func(b *testing.B) (*State, []*protocol.Block) {
				g := genesisBlock(b, manifest([]int{0, 2}, 1, []int{1}, 1, 1), 0)
				s := New(g.CID)
				mustAdd(b, s, g)
				var fs []cid.Cid
				for i := range 16 {
					f := signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
						Name: fmt.Sprint("f", i), Licence: "MIT", Association: xs, Threshold: 1, Prev: links(g.CID), Version: 1,
					}}, key(2).Public())
					mustAdd(b, s, f)
					fs = append(fs, f.CID)
				}
				var bs []*protocol.Block
				for i := range n {
					bs = append(bs, signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
						Name: fmt.Sprint("c", i), Licence: "MIT", Association: xs[:1], Threshold: 1, Prev: links(fs...), Version: 2, Revoked: xs,
					}}, xs[0], xs[1:]...))
				}
				return s, bs
			})
		})
	}
}

// BenchmarkAttackSuspendedReviews: a contest, then N suspended reviews of
// one contribution by the 256 maintainers of the thief's contested update.
func BenchmarkAttackSuspendedReviews(b *testing.B) {
	var ms []protocol.PublicKey
	for i := range 256 {
		ms = append(ms, freshKey(5000+i))
	}
	slices.SortFunc(ms, protocol.PublicKey.Compare)
	for _, n := range []int{2000, 4000, 8000} {
		b.Run(fmt.Sprintf("reviews=%d", n), func(b *testing.B) {
			benchAttack(b, func(b *testing.B) (*State, []*protocol.Block) {
				g := genesisBlock(b, manifest([]int{0, 2}, 1, []int{1}, 1, 1), 0)
				rm := manifest([]int{0}, 1, []int{1}, 1, 1)
				rm.Revoked = pubs(2)
				hr := update(b, g.CID, 5, rm, 1, []cid.Cid{g.CID}, 0)
				f := signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
					Name: "f", Licence: "MIT", Association: pubs(2), Threshold: 1, Prev: links(g.CID), Version: 1,
					Maintainers: ms, Quorum: 256, RejectQuorum: 256, Revoked: pubs(0),
				}}, key(2).Public())
				c := contribution(b, g.CID, g.CID, 11, 5, "c")
				s := New(g.CID)
				mustAdd(b, s, g, hr, f, c)
				var bs []*protocol.Block
				for i := range n {
					bs = append(bs, signedBy(b, &protocol.Record{Commons: g.CID, Time: protocol.HLC(100 + i), Body: &protocol.Review{
						Target: protocol.Link{Cid: c.CID}, Decision: protocol.DecisionAccept, Under: protocol.Link{Cid: f.CID},
					}}, ms[i%256]))
				}
				return s, bs
			})
		})
	}
}

// BenchmarkAttackChainThenRevokers: stolen key 2, not yet revoked, signs a
// chain of N/2 updates, then N/2 children of its tip that each revoke key 2:
// every revoker has the whole chain in its past.
func BenchmarkAttackChainThenRevokers(b *testing.B) {
	for _, n := range []int{1000, 2000, 4000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			benchAttack(b, func(b *testing.B) (*State, []*protocol.Block) {
				g := genesisBlock(b, manifest([]int{0, 2}, 1, []int{1}, 1, 1), 0)
				s := New(g.CID)
				mustAdd(b, s, g)
				thief := key(2).Public()
				var bs []*protocol.Block
				prev := g.CID
				for j := range n / 2 {
					blk := signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
						Name: fmt.Sprint("L", j), Licence: "MIT", Association: []protocol.PublicKey{thief}, Threshold: 1,
						Prev: links(prev), Version: uint64(j + 1),
					}}, thief)
					bs = append(bs, blk)
					prev = blk.CID
				}
				for i := range n / 2 {
					bs = append(bs, signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
						Name: fmt.Sprint("R", i), Licence: "MIT", Association: []protocol.PublicKey{thief}, Threshold: 1,
						Prev: links(prev), Version: uint64(n/2 + 1), Revoked: []protocol.PublicKey{thief},
					}}, thief))
				}
				return s, bs
			})
		})
	}
}

// BenchmarkAttackFlips: stolen key 2 appoints maintainer X, who reviews one
// contribution R times; then N updates R_j on forks F_j, each revoking the
// key of R_{j-1} (R_1 revokes X): each new one flips the labels of the
// whole chain, and X's standing with them.
func BenchmarkAttackFlips(b *testing.B) {
	for _, c := range []struct{ flips, reviews int }{{1000, 10}, {2000, 20}, {1000, 1000}, {2000, 2000}} {
		b.Run(fmt.Sprintf("flips=%d/reviews=%d", c.flips, c.reviews), func(b *testing.B) {
			benchAttack(b, func(b *testing.B) (*State, []*protocol.Block) {
				g := genesisBlock(b, manifest([]int{0, 2}, 1, []int{1}, 1, 1), 0)
				s := New(g.CID)
				thief, x := key(2).Public(), freshKey(900000)
				f0 := signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
					Name: "F0", Licence: "MIT", Association: []protocol.PublicKey{thief}, Threshold: 1,
					Maintainers: []protocol.PublicKey{x}, Quorum: 1, RejectQuorum: 1, Prev: links(g.CID), Version: 1,
				}}, thief)
				con := contribution(b, g.CID, g.CID, 11, 5, "c")
				mustAdd(b, s, g, f0, con)
				for i := range c.reviews {
					mustAdd(b, s, signedBy(b, &protocol.Record{Commons: g.CID, Time: protocol.HLC(100 + i), Body: &protocol.Review{
						Target: protocol.Link{Cid: con.CID}, Decision: protocol.DecisionAccept, Under: protocol.Link{Cid: f0.CID},
					}}, x))
				}
				var bs []*protocol.Block
				last := x
				for j := range c.flips {
					y := freshKey(910000 + j)
					fj := signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
						Name: fmt.Sprint("F", j+1), Licence: "MIT", Association: []protocol.PublicKey{y}, Threshold: 1, Prev: links(g.CID), Version: 1,
					}}, thief)
					mustAdd(b, s, fj)
					bs = append(bs, signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
						Name: fmt.Sprint("R", j+1), Licence: "MIT", Association: []protocol.PublicKey{y}, Threshold: 1,
						Prev: links(fj.CID), Version: 2, Revoked: []protocol.PublicKey{last},
					}}, y))
					last = y
				}
				return s, bs
			})
		})
	}
}

// BenchmarkAttackContestedView: after the honest revocation of key 2, N
// forks by key 2 revoke keys 0 and 2, all contested; one op is one
// ContestedManifests call, as manifest show makes.
func BenchmarkAttackContestedView(b *testing.B) {
	for _, n := range []int{1000, 2000, 4000} {
		b.Run(fmt.Sprintf("forks=%d", n), func(b *testing.B) {
			g := genesisBlock(b, manifest([]int{0, 2}, 1, []int{1}, 1, 1), 0)
			rm := manifest([]int{0}, 1, []int{1}, 1, 1)
			rm.Revoked = pubs(2)
			s := New(g.CID)
			mustAdd(b, s, g, update(b, g.CID, 5, rm, 1, []cid.Cid{g.CID}, 0))
			for i := range n {
				mustAdd(b, s, signedBy(b, &protocol.Record{Commons: g.CID, Time: 10, Body: &protocol.Manifest{
					Name: fmt.Sprint("F", i), Licence: "MIT", Association: pubs(2), Threshold: 1,
					Prev: links(g.CID), Version: 1, Revoked: pubs(0, 2),
				}}, key(2).Public()))
			}
			b.ResetTimer()
			for b.Loop() {
				if len(s.ContestedManifests()) != n+1 {
					b.Fatal("not all contested")
				}
			}
		})
	}
}
