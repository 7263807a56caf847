package node

import (
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
)

// authorityView is what the log says of a commons' authority when it
// changes: the manifest head, the fork heads, the revoked and banned keys
// and the contested manifests.
type authorityView struct {
	head      cid.Cid
	version   uint64
	forks     []cid.Cid
	revoked   []protocol.PublicKey
	banned    []protocol.PublicKey
	banSusp   []protocol.PublicKey
	contested []cid.Cid
}

func viewAuthority(st *crdt.State) authorityView {
	h, m := st.Head()
	v := authorityView{head: h, forks: st.Forks(), revoked: st.Revoked(), banned: st.Banned(), banSusp: st.BanSuspended(), contested: st.ContestedCIDs()}
	if m != nil {
		v.version = m.Version
	}
	return v
}

// logAuthority logs how a commons' authority changed from was to now:
// a new head at Info; a fork, revocations, bans, lifted bans and contests
// at Warn. Loop only.
func (n *Node) logAuthority(id cid.Cid, was, now authorityView) {
	if !now.head.Equals(was.head) {
		n.log.Info("manifest head changed", "commons", id, "head", now.head, "version", now.version, "was", was.head)
	}
	if len(now.forks) > 1 && !slices.EqualFunc(now.forks, was.forks, cid.Cid.Equals) {
		n.log.Warn("the manifest chain has forked: concurrent updates, all authorised; the next update merges them", "commons", id, "heads", now.forks)
	}
	if added := newKeys(was.revoked, now.revoked); len(added) > 0 {
		n.log.Warn("keys revoked", "commons", id, "keys", added)
	}
	if added := newKeys(was.banned, now.banned); len(added) > 0 {
		n.log.Warn("keys banned: their contributions and reviews count for nothing", "commons", id, "keys", added)
	}
	if lifted := newKeys(now.banned, was.banned); len(lifted) > 0 {
		n.log.Warn("bans lifted: no manifest head bans these keys any more; their contributions and reviews count again", "commons", id, "keys", lifted)
	}
	if held := newKeys(was.banSusp, now.banSusp); len(held) > 0 {
		n.log.Warn("bans contested: keys banned only by contested manifests; their work is held pending until the contest is decided", "commons", id, "keys", held)
	}
	if added := newCIDs(was.contested, now.contested); len(added) > 0 {
		n.log.Warn("manifests contested: association keys revoke each other; see commons manifest show", "commons", id, "manifests", added)
	}
}

func newKeys(was, now []protocol.PublicKey) []protocol.PublicKey {
	var out []protocol.PublicKey
	for _, k := range now {
		if !slices.Contains(was, k) {
			out = append(out, k)
		}
	}
	return out
}

func newCIDs(was, now []cid.Cid) []cid.Cid {
	var out []cid.Cid
	for _, c := range now {
		if !slices.ContainsFunc(was, c.Equals) {
			out = append(out, c)
		}
	}
	return out
}
