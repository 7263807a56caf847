package crdt

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Reciprocity is what the signed records of a commons say of how the
// participants who build on it give back (SPEC §12.10): per participant
// that declared a use of the commons, sponsored work or pledged, the paid
// contributions it countersigned and how many were accepted, and its
// pledges and what acknowledgements say was met. It states
// signals and the records behind each, and no verdict.
type Reciprocity struct {
	// Since is the start of the period: only contributions made at or
	// after it count (0: the commons' whole life).
	Since protocol.HLC
	// Accepted is how many contributions made in the period are accepted:
	// what each participant's Accepted is a share of.
	Accepted int
	// Participants are sorted by key bytes.
	Participants []Participant
}

// Participant is one participant's part in a Reciprocity report.
type Participant struct {
	Key protocol.PublicKey
	// Profile is the profile that counts for Key (State.Profile), and Uses
	// how many uses of the commons it declares; undefined and 0 if none.
	Profile cid.Cid
	Uses    int
	// Sponsored are the paid contributions made in the period, not inert,
	// that name Key as sponsor and that Key countersigned, sorted by (time,
	// CID).
	Sponsored []Sponsored
	// Accepted is how many of Sponsored are accepted.
	Accepted int
	// Unconfirmed are the paid contributions made in the period, not
	// inert, that name Key as sponsor and that Key has not countersigned,
	// sorted by (time, CID): the contributors' word alone.
	Unconfirmed []cid.Cid
	// Pledges are Key's pledges that count, whose period ends at or after
	// the report's start, sorted by (time, CID).
	Pledges []PledgeView
}

// PledgeView is a pledge and what acknowledgements say of it.
type PledgeView struct {
	CID    cid.Cid
	Time   protocol.HLC
	Pledge *protocol.Pledge
	// Acknowledged is the sum of the amounts its acknowledgements that
	// count say were met, at most the pledge's Amount (0 for
	// infrastructure); Met is true once it reaches Amount, or for
	// infrastructure once one acknowledgement counts.
	Acknowledged uint64
	Met          bool
	// Acks are its acknowledgements that count, sorted by CID; of copies
	// that differ only in their signatures, the one of lowest CID.
	Acks []cid.Cid
	// Unmet is the resolution of an upheld dispute that marks the pledge
	// unmet (SPEC §12.12), if one does or a contest could make one do:
	// then no acknowledgement counts.
	Unmet cid.Cid
}

// Sponsored is a paid contribution confirmed by its sponsor.
type Sponsored struct {
	Contribution cid.Cid
	Time         protocol.HLC // the contribution's
	Sponsorship  cid.Cid
	Status       Status
}

// sponsorGroup is the prefix of the 'q' list of the paid contributions
// naming k as sponsor.
func sponsorGroup(k protocol.PublicKey) []byte { return append([]byte{tagSponsor}, k[:]...) }

// keyedCID is a member of a list keyed by a public key, then a CID.
type keyedCID struct {
	k protocol.PublicKey
	c cid.Cid
}

// keyed returns the members of the list under tag ('q' or 'g'): tag, key,
// CID.
func (s *State) keyed(tag byte) []keyedCID {
	var out []keyedCID
	s.walk([]byte{tag}, func(k []byte) bool {
		if len(k) <= 1+protocol.PublicKeySize {
			s.fail(fmt.Errorf("%w: key %x", ErrDamaged, k))
			return false
		}
		c, err := cid.Cast(k[1+protocol.PublicKeySize:])
		if err != nil {
			s.fail(fmt.Errorf("%w: key %x: %w", ErrDamaged, k, err))
			return false
		}
		var pk protocol.PublicKey
		copy(pk[:], k[1:])
		out = append(out, keyedCID{pk, c})
		return true
	})
	return out
}

// Reciprocity reports on the contributions made at or after since, and on
// the pledges whose period ends at or after it. A participant is a key
// whose profile declares a use, that confirmed a sponsorship in the
// period, or that made a pledge that counts for it. It reads the profiles through Records, and the
// paid contributions' and the period's entries; it returns the error of a
// read that fails.
func (s *State) Reciprocity(since protocol.HLC) (Reciprocity, error) {
	out := Reciprocity{Since: since}
	if s.err != nil {
		return out, s.err
	}
	byKey := map[protocol.PublicKey]*Participant{}
	get := func(k protocol.PublicKey) *Participant {
		p := byKey[k]
		if p == nil {
			p = &Participant{Key: k}
			byKey[k] = p
		}
		return p
	}
	// Profiles that declare a use.
	var keys []protocol.PublicKey
	s.walk([]byte{tagProfile}, func(k []byte) bool {
		var pk protocol.PublicKey
		copy(pk[:], k[1:])
		keys = append(keys, pk)
		return true
	})
	for _, k := range keys {
		c, ok := s.Profile(k)
		if !ok {
			continue
		}
		b, err := s.read(c)
		if err != nil {
			return out, err
		}
		if n := len(b.Record.Profile().Uses); n > 0 {
			p := get(k)
			p.Profile, p.Uses = c, n
		}
	}
	// Paid contributions, by the sponsor they name.
	named := s.keyed(tagSponsor)
	unconfirmed := map[protocol.PublicKey][]*entry{}
	for _, n := range named {
		e := s.entry(n.c)
		if e == nil || e.con == nil || e.time < since || e.cls == clsInert {
			continue // an inert contribution (a banned key's) says nothing
		}
		if sp, ok := s.Sponsorship(n.c); ok {
			p := get(n.k)
			p.Sponsored = append(p.Sponsored, Sponsored{Contribution: n.c, Time: e.time, Sponsorship: sp, Status: e.con.status})
			if e.con.status == StatusAccepted {
				p.Accepted++
			}
		} else {
			unconfirmed[n.k] = append(unconfirmed[n.k], e)
		}
	}
	for k, es := range unconfirmed {
		p := byKey[k]
		if p == nil {
			continue // named by contributors only: no part of its own
		}
		slices.SortFunc(es, byTimeCID)
		for _, e := range es {
			p.Unconfirmed = append(p.Unconfirmed, e.cid)
		}
	}
	// Pledges whose period reaches the report's.
	pledges := s.keyed(tagPledge)
	for _, pl := range pledges {
		e := s.entry(pl.c)
		if e == nil || e.cls != clsOK {
			continue
		}
		b, err := s.read(pl.c)
		if err != nil {
			return out, err
		}
		body := b.Record.Pledge()
		if body.Until < uint64(since.Millis()) {
			continue
		}
		v := PledgeView{CID: pl.c, Time: e.time, Pledge: body}
		if by, _, maybe := s.Effect(pl.c, protocol.EffectUnmet); maybe {
			v.Unmet = by
			get(pl.k).Pledges = append(get(pl.k).Pledges, v)
			continue
		}
		same := map[[32]byte]bool{} // copies that differ only in signatures count once
		for _, a := range s.list(groupKey(tagAcks, pl.c)) {
			x := s.entry(a)
			if x == nil || x.cls != clsOK {
				continue
			}
			ab, err := s.read(a)
			if err != nil {
				return out, err
			}
			d, err := ab.Record.SigningDigest()
			if err != nil {
				return out, fmt.Errorf("crdt: acknowledgement %s: %w", a, err)
			}
			if same[d] {
				continue
			}
			same[d] = true
			v.Acks = append(v.Acks, a)
			if v.Acknowledged += x.ext.amount; v.Acknowledged < x.ext.amount || v.Acknowledged > body.Amount {
				v.Acknowledged = body.Amount // no more than was pledged, and no overflow
			}
		}
		v.Met = len(v.Acks) > 0 && v.Acknowledged == body.Amount
		get(pl.k).Pledges = append(get(pl.k).Pledges, v)
	}
	// The period's accepted contributions: for the whole life, the count
	// the state keeps.
	if since == 0 {
		out.Accepted = s.counts[statusIndex(StatusAccepted)]
	} else {
		from := s.idx.Below(protocol.Bound{Time: uint64(since)}).Count
		s.idx.Range(from, s.idx.Len(), func(it *Item) bool {
			if e := s.entry(it.Digest.CID()); e != nil && e.con != nil && e.con.status == StatusAccepted {
				out.Accepted++
			}
			return s.err == nil
		})
	}
	for _, p := range byKey {
		slices.SortFunc(p.Pledges, func(a, b PledgeView) int {
			if a.Time != b.Time {
				return cmp.Compare(a.Time, b.Time)
			}
			return compareCID(a.CID, b.CID)
		})
		slices.SortFunc(p.Sponsored, func(a, b Sponsored) int {
			if a.Time != b.Time {
				return cmp.Compare(a.Time, b.Time)
			}
			return compareCID(a.Contribution, b.Contribution)
		})
		out.Participants = append(out.Participants, *p)
	}
	slices.SortFunc(out.Participants, func(a, b Participant) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return out, s.err
}
