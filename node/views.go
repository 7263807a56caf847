package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// ID returns the node's identity and addresses.
func (n *Node) ID(context.Context) (api.IDInfo, error) {
	info := api.IDInfo{PeerID: n.self.String(), PublicKey: n.self.Hex(), Addresses: []string{}}
	if n.host != nil {
		for _, a := range n.host.Addrs() {
			info.Addresses = append(info.Addresses, fmt.Sprintf("%s/p2p/%s", a, n.host.ID()))
		}
	}
	return info, nil
}

// Peers lists connected peers.
func (n *Node) Peers(context.Context) ([]api.PeerInfo, error) {
	out := []api.PeerInfo{}
	if n.host == nil {
		return out, nil
	}
	for _, p := range n.host.Network().Peers() {
		pi := api.PeerInfo{ID: p.String(), Addresses: []string{}, Connections: []api.ConnInfo{}, Relayed: true}
		for _, c := range n.host.Network().ConnsToPeer(p) {
			ci := connInfo(c)
			pi.Addresses = append(pi.Addresses, ci.Address)
			pi.Connections = append(pi.Connections, ci)
			pi.Relayed = pi.Relayed && ci.Relayed
		}
		pi.Relayed = pi.Relayed && len(pi.Connections) > 0
		out = append(out, pi)
	}
	slices.SortFunc(out, func(a, b api.PeerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func connInfo(c network.Conn) api.ConnInfo {
	dir := "outbound"
	if c.Stat().Direction == network.DirInbound {
		dir = "inbound"
	}
	a := c.RemoteMultiaddr()
	return api.ConnInfo{Address: a.String(), Direction: dir, Relayed: c.Stat().Limited || isRelayed(a)}
}

// Status summarises the node and each replicated commons.
func (n *Node) Status(ctx context.Context) (api.StatusInfo, error) {
	info := api.StatusInfo{PeerID: n.self.String(), Online: n.host != nil, Commons: []api.CommonsStatus{},
		Reachability: n.Reachability(), Addresses: []string{}, Connections: []api.PeerConn{}}
	if n.host != nil {
		info.Peers = len(n.host.Network().Peers())
		for _, a := range n.host.Addrs() {
			info.Addresses = append(info.Addresses, a.String())
		}
		for _, c := range n.host.Network().Conns() {
			info.Connections = append(info.Connections, api.PeerConn{Peer: c.RemotePeer().String(), ConnInfo: connInfo(c)})
		}
		slices.SortFunc(info.Connections, func(a, b api.PeerConn) int { return strings.Compare(a.Peer+a.Address, b.Peer+b.Address) })
		info.DHT = n.dhtInfo()
	}
	err := n.do(ctx, func() {
		for _, id := range n.order {
			info.Commons = append(info.Commons, n.commonsStatus(n.commons[id]))
		}
	})
	return info, err
}

// commonsStatus summarises one commons. Loop only.
func (n *Node) commonsStatus(rep *replica) api.CommonsStatus {
	s := rep.state
	root, of := rep.rootNow()
	cs := api.CommonsStatus{ID: rep.id.String(), Records: s.Len(), StateRoot: root.String(), StateRootRecords: of,
		Forks: cidStrings(s.Forks()), Contested: []string{}, Held: s.Held(), Inert: s.NumInert(), Waiting: s.Waiting(), LeftOut: rep.leftOut}
	for _, c := range s.ContestedCIDs() {
		cs.Contested = append(cs.Contested, c.String())
	}
	cs.Pending, cs.Accepted, cs.Rejected = s.Counts()
	cs.Withdrawn = s.Withdrawn()
	cs.OpenDisputes = rep.openDisputes()
	if h, m := s.Head(); m != nil {
		cs.Name, cs.ManifestHead = m.Name, h.String()
	}
	if rep.topic != nil {
		cs.Peers = len(rep.topic.ListPeers())
	}
	return cs
}

func cidStrings(cs []cid.Cid) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

// Manifest returns a commons' current manifest and its history.
func (n *Node) Manifest(ctx context.Context, commons string) (api.ManifestInfo, error) {
	var info api.ManifestInfo
	var ierr error
	err := n.do(ctx, func() {
		rep, err := n.replicaFor(commons)
		if err != nil {
			ierr = err
			return
		}
		h, m := rep.state.Head()
		if m == nil {
			ierr = fmt.Errorf("%w: the genesis manifest of %s has not arrived yet", api.ErrUnknownCommons, commons)
			return
		}
		info = api.ManifestInfo{Commons: rep.id.String(), Head: h.String(), Manifest: m, Forks: cidStrings(rep.state.Forks()),
			Revoked: rep.state.Revoked(), Suspended: rep.state.Suspended(), Banned: rep.state.Banned(), BanSuspended: rep.state.BanSuspended(), Contested: []api.ManifestVersion{},
			Work: rep.state.Genesis().WorkAsked(), Bans: rep.state.Genesis().BansAllowed(), Coalition: rep.state.Genesis().Coalition(),
			AssociationRecords: rep.state.Genesis().AssociationRecords()}
		for _, v := range rep.state.History() {
			info.History = append(info.History, manifestVersion(v))
		}
		for _, v := range rep.state.ContestedManifests() {
			info.Contested = append(info.Contested, manifestVersion(v))
		}
	})
	if err != nil {
		return info, err
	}
	return info, ierr
}

func manifestVersion(v crdt.ManifestVersion) api.ManifestVersion {
	mv := api.ManifestVersion{CID: v.CID.String(), Version: v.Manifest.Version, Author: v.Author, Time: v.Time.Time(), Head: v.Head}
	if v.Contested {
		mv.ContestedWith, mv.ContestedWithTotal = cidStrings(v.AttackedBy), v.Attackers
	}
	return mv
}

// Show returns a record, and for a contribution its status and reviews.
func (n *Node) Show(ctx context.Context, c string) (api.RecordInfo, error) {
	id, err := cid.Decode(c)
	if err != nil {
		return api.RecordInfo{}, badRequest("%q is not a CID", c)
	}
	// On the loop, what the states hold; the records are read after.
	var (
		found, isCon bool
		manifest     *protocol.Block
		typ          protocol.Type
		cv           crdt.ContributionView
		verdict      crdt.Verdict
		contested    bool
		withdrawnBy  string
	)
	var readErr error
	// The record is read while the loop looks it up: of the records the
	// states know, they hold a manifest's alone. (A read of a CID no store
	// holds costs little: badger's bloom filters answer it.)
	type read struct {
		raw []byte
		err error
	}
	reading := make(chan read, 1)
	go func() {
		var r read
		r.err = guard(func() (err error) {
			r.raw, err = n.st.GetRecord(ctx, id)
			return err
		})
		reading <- r
	}()
	err = n.do(ctx, func() {
		for _, c := range n.order {
			rep := n.commons[c]
			if typ, found = rep.state.Type(id); !found {
				continue
			}
			manifest = rep.state.Manifest(id)
			cv, isCon, readErr = rep.state.Standing(id)
			if by, _, maybe := rep.state.Effect(id, protocol.EffectWithdraw); isCon && maybe {
				withdrawnBy = by.String()
			}
			contested = rep.state.Contested(id)
			if v, ok := rep.state.Verdict(id); ok {
				verdict = v
			}
			return
		}
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return api.RecordInfo{}, err
	}
	if !found {
		return api.RecordInfo{}, fmt.Errorf("%w: no record %s here", api.ErrNotFound, c)
	}
	b := manifest
	if b == nil {
		r := <-reading
		if r.err != nil {
			// Stored and added between the read and the loop's lookup,
			// or a read that failed: read again, now that a state knows
			// the record.
			r.raw, r.err = n.st.GetRecord(ctx, id)
		}
		if r.err != nil {
			return api.RecordInfo{}, fmt.Errorf("read %s %s: %w", typ, c, notHeld(r.err))
		}
		if b, err = protocol.ParseStored(id, r.raw); err != nil {
			return api.RecordInfo{}, fmt.Errorf("stored record %s: %w", c, err)
		}
	}
	info := recordInfo(b)
	if isCon {
		// The reviews' records are read side by side, readAheadMax at
		// most (any after are read one by one): a record may be 64 KiB,
		// and a contribution may have thousands of reviews.
		reviews := make([]cid.Cid, 0, min(len(cv.Reviews), readAheadMax))
		for _, r := range cv.Reviews[:min(len(cv.Reviews), readAheadMax)] {
			reviews = append(reviews, r.CID)
		}
		if err := cv.Fill(readRecords(ctx, n.st, reviews, b)); err != nil {
			return api.RecordInfo{}, err
		}
		info.Status, info.Held, info.Inert = string(cv.Status), cv.Held, cv.Inert
		info.WithdrawnBy = withdrawnBy
		if cv.Sponsorship.Defined() {
			info.ConfirmedBy = cv.Sponsorship.String()
		}
		for _, r := range cv.Reviews {
			ri := api.ReviewInfo{
				CID: r.CID.String(), Maintainer: r.Maintainer, Decision: r.Decision, Under: r.Under.String(),
				Time: r.Time.Time(), Rationale: r.Rationale, Counts: r.Counts, Suspended: r.Suspended, Inert: r.Inert,
				Dropped: r.Dropped,
			}
			if r.For != (protocol.PublicKey{}) {
				ri.For = &r.For
			}
			info.Reviews = append(info.Reviews, ri)
		}
	}
	if verdict.Class == crdt.ClassInert {
		info.Inert = verdict.Reason
	}
	info.Contested = contested
	return info, nil
}

func recordInfo(b *protocol.Block) api.RecordInfo {
	r := b.Record
	info := api.RecordInfo{
		CID: b.CID.String(), Type: string(r.Type()), Commons: b.CommonsID().String(), Author: r.Author,
		Time: r.Time.Time(), HLC: uint64(r.Time), Links: cidStrings(r.Links()),
		Manifest: r.Manifest(), Contribution: r.Contribution(), Review: r.Review(),
		Profile: r.Profile(), Sponsorship: r.Sponsorship(), Pledge: r.Pledge(), Ack: r.Acknowledgement(),
		Dispute: r.Dispute(), Statement: r.Statement(), Resolution: r.Resolution(), Certificate: r.Certificate(), Rotation: r.Rotation(),
	}
	for _, cs := range r.Cosigs {
		info.Cosigners = append(info.Cosigners, cs.Key)
	}
	return info
}

// Feed returns feed entries in arrival order, per commons.
func (n *Node) Feed(ctx context.Context, q api.FeedQuery) ([]api.FeedItem, error) {
	if q.Limit <= 0 {
		q.Limit = api.DefaultFeedLimit
	}
	if q.Limit > api.MaxFeedLimit {
		return nil, badRequest("limit %d exceeds %d", q.Limit, api.MaxFeedLimit)
	}
	if err := feed.CheckStatus(q.Status); err != nil {
		return nil, badRequest("%v", err)
	}
	if q.Wait > api.MaxFeedWait {
		q.Wait = api.MaxFeedWait
	}
	deadline := time.Now().Add(q.Wait)
	for {
		var ids []cid.Cid
		var changed <-chan struct{}
		var ierr error
		if err := n.do(ctx, func() {
			changed = n.feeds.Changed()
			if q.Commons == "" {
				ids = append(ids, n.order...)
				return
			}
			rep, err := n.replicaFor(q.Commons)
			if err != nil {
				ierr = err
				return
			}
			ids = []cid.Cid{rep.id}
		}); err != nil {
			return nil, err
		}
		if ierr != nil {
			return nil, ierr
		}
		if err := n.checkSince(ctx, ids, q); err != nil {
			return nil, err
		}
		items, err := n.feedPage(ctx, ids, q)
		if err != nil || len(items) > 0 || q.Wait <= 0 {
			return items, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return items, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
			return items, nil
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-n.stopped:
			t.Stop()
			return nil, api.ErrClosed
		}
	}
}

// feedPage reads the feed logs of the given commons after q.Since and
// keeps the entries that match q, up to q.Limit.
// checkSince refuses a cursor past the end of the feed of every commons
// in ids: it names no record there, so the entries after it would be ones
// that have not arrived, and a reader waiting for them would miss those
// that come first. A cursor at the end is the reader's place to wait at.
func (n *Node) checkSince(ctx context.Context, ids []cid.Cid, q api.FeedQuery) error {
	if q.Since == 0 || len(ids) == 0 {
		return nil
	}
	var end uint64
	for _, id := range ids {
		head, err := n.st.FeedHead(ctx, id)
		if err != nil {
			return fmt.Errorf("node: read feed: %w", err)
		}
		if q.Since <= head {
			return nil
		}
		end = max(end, head)
	}
	if len(ids) == 1 {
		return badRequest("cursor %d is past the end of the feed of commons %s, which ends at cursor %d", q.Since, ids[0], end)
	}
	return badRequest("cursor %d is past the end of the feed of every commons here (the longest ends at cursor %d)", q.Since, end)
}

func (n *Node) feedPage(ctx context.Context, ids []cid.Cid, q api.FeedQuery) ([]api.FeedItem, error) {
	items := []api.FeedItem{}
	for _, id := range ids {
		after := q.Since
		// Records past the feed's head are stored but not applied yet.
		applied := n.feeds.Head(id).Cursor
		for len(items) < q.Limit && after < applied {
			size := min(1024, int(applied-after))
			if q.Status == "" {
				size = min(size, q.Limit-len(items)) // every record read is kept
			}
			ss, statuses, next, err := n.feedRead(ctx, id, after, applied, size, q.Status != "")
			if err != nil {
				return nil, err
			}
			if next == after {
				break
			}
			after = next
			for i, s := range ss {
				if q.Status != "" && statuses[i] != q.Status {
					continue
				}
				items = append(items, api.FeedItem{Cursor: s.Cursor, CID: s.CID.String(), Type: string(s.Type), Author: s.Author, Commons: id.String(),
					Time: s.Time.Time(), Title: s.Title, Status: statuses[i], Target: s.Target, Decision: s.Decision})
				if len(items) == q.Limit {
					break
				}
			}
		}
	}
	return items, nil
}

// feedRead returns the summaries of up to size of commons id's records
// after cursor after, through cursor applied (only the contributions',
// with contribs), the status now of each, and the cursor it read through
// (feedSummaries). The contributions' rows and their statuses' rows of
// the records a page of size would hold are read while their summaries
// are (feed.Ahead), where the summaries are read from their rows.
func (n *Node) feedRead(ctx context.Context, id cid.Cid, after, applied uint64, size int, contribs bool) ([]feed.Summary, []string, uint64, error) {
	var ahead *feed.Ahead
	if from, ok := n.feeds.SummariesFrom(id); ok && after >= from {
		ahead = n.feeds.ReadAhead(ctx, id, after, min(after+uint64(size), applied))
		defer ahead.Close()
	}
	ss, next, err := n.feedSummaries(ctx, id, after, applied, size, ahead)
	if err != nil || next == after {
		return nil, nil, next, err
	}
	if contribs {
		ss = slices.DeleteFunc(ss, func(s feed.Summary) bool { return s.Type != protocol.TypeContribution })
	}
	statuses, err := n.feedStatuses(ctx, id, ss, ahead)
	return ss, statuses, next, err
}

// feedStatuses returns the status now of each contribution in ss, ""
// for the other records: from the feed's rows, read in order beside the
// summaries, and from the state for those the rows do not give (a repo
// made by a version that kept no status rows).
func (n *Node) feedStatuses(ctx context.Context, id cid.Cid, ss []feed.Summary, ahead *feed.Ahead) ([]string, error) {
	statuses := make([]string, len(ss))
	var at []int // the contributions in ss
	var cursors []uint64
	for i, s := range ss {
		if s.Type == protocol.TypeContribution {
			at, cursors = append(at, i), append(cursors, s.Cursor)
		}
	}
	if len(at) == 0 {
		return statuses, nil
	}
	now, err := n.feeds.Statuses(ctx, id, cursors, ahead)
	if err != nil {
		return nil, fmt.Errorf("node: read feed: %w", err)
	}
	var ask []int
	for j, i := range at {
		if statuses[i] = string(now[j]); now[j] == "" {
			ask = append(ask, i)
		}
	}
	if len(ask) == 0 {
		return statuses, nil
	}
	err = n.do(ctx, func() {
		rep := n.commons[id]
		if rep == nil {
			return // left meanwhile: no statuses
		}
		for _, i := range ask {
			if status, ok := rep.state.Status(ss[i].CID); ok {
				statuses[i] = string(status)
			}
		}
	})
	return statuses, err
}

// feedSummaries returns the summaries of up to size of commons id's
// records after cursor after, through cursor applied, and the cursor it
// read through (after, if there are none). It reads the feed's summary
// rows of the records that have them, and the other records (a repo made
// by a version that kept none) whole.
func (n *Node) feedSummaries(ctx context.Context, id cid.Cid, after, applied uint64, size int, ahead *feed.Ahead) ([]feed.Summary, uint64, error) {
	if from, ok := n.feeds.SummariesFrom(id); ok && after >= from {
		ss, err := n.feeds.Summaries(ctx, id, after, applied, size, ahead)
		if err != nil {
			return nil, after, fmt.Errorf("node: read feed: %w", err)
		}
		if len(ss) < size {
			return ss, applied, nil // none left through applied
		}
		return ss, ss[len(ss)-1].Cursor, nil
	} else if ok {
		applied = min(applied, from) // the records after from have rows
	}
	page, err := n.readFeed(ctx, id, after, size)
	if err != nil {
		return nil, after, fmt.Errorf("node: read feed: %w", err)
	}
	// Reading past records left out as damaged can reach past applied.
	full := len(page) == size
	for len(page) > 0 && page[len(page)-1].Cursor > applied {
		page, full = page[:len(page)-1], false
	}
	ss := make([]feed.Summary, 0, len(page))
	for _, s := range page {
		b, err := protocol.ParseStored(s.CID, s.Raw)
		if err != nil {
			return nil, after, fmt.Errorf("node: stored record %s: %w", s.CID, err)
		}
		ss = append(ss, feed.SummaryOf(s.Cursor, b))
	}
	if !full {
		return ss, applied, nil // none left through applied
	}
	return ss, page[len(page)-1].Cursor, nil
}

// Contributions lists a commons' contributions that match q.
func (n *Node) Contributions(ctx context.Context, q api.ContributionQuery) (api.ContributionPage, error) {
	page := api.ContributionPage{Contributions: []api.ContributionItem{}}
	if q.Limit <= 0 {
		q.Limit = api.DefaultFeedLimit
	}
	if q.Limit > api.MaxFeedLimit {
		return page, badRequest("limit %d exceeds %d", q.Limit, api.MaxFeedLimit)
	}
	filter, err := feed.EventFilter{Status: q.Status, Author: q.Author}.Validate()
	if err != nil {
		return page, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	var rep *replica
	var rerr error
	if err := n.do(ctx, func() { rep, rerr = n.replicaFor(q.Commons) }); err != nil {
		return page, err
	}
	if rerr != nil {
		return page, rerr
	}
	// The contribution rows are read from the store, off the loop, a chunk
	// at a time; the loop only looks up the statuses of those that match
	// the rest of the query.
	after := q.After
	for {
		cs, err := n.feeds.Contributions(ctx, rep.id, after, contributionsRead)
		if err != nil {
			return page, err
		}
		if len(cs) == 0 {
			break
		}
		after = cs[len(cs)-1].Cursor
		cs = slices.DeleteFunc(cs, func(c feed.Contribution) bool {
			t := c.Time.Time()
			return q.Kind != "" && c.Kind != q.Kind || filter.Author != "" && c.Author.Hex() != filter.Author ||
				!q.Since.IsZero() && t.Before(q.Since) || !q.Until.IsZero() && !t.Before(q.Until)
		})
		full := false
		err = n.do(ctx, func() {
			for _, c := range cs {
				st, _ := rep.state.Status(c.CID)
				if filter.Status != "" && string(st) != filter.Status {
					continue
				}
				if len(page.Contributions) == q.Limit {
					page.Next = page.Contributions[q.Limit-1].Cursor
					full = true
					return
				}
				page.Contributions = append(page.Contributions, api.ContributionItem{
					Cursor: c.Cursor, CID: c.CID.String(), Kind: c.Kind, Author: c.Author, Time: c.Time.Time(), Status: string(st),
				})
			}
		})
		if err != nil {
			return page, err
		}
		if full {
			break
		}
	}
	// The titles are read from the store, off the loop.
	for i := range page.Contributions {
		it := &page.Contributions[i]
		b, err := n.contributionRecord(ctx, it.CID)
		if errors.Is(err, store.ErrDropped) {
			it.Dropped = true
			continue
		}
		if err != nil {
			return page, err
		}
		it.Title = b.Record.Contribution().Title
	}
	return page, nil
}

// contributionsRead is how many contributions a list reads from the store
// at once.
const contributionsRead = 512

// notHeld returns err, a read's, as one of the API's not-found errors if
// it says the record's bytes were dropped here (the commons disowned it).
func notHeld(err error) error {
	if errors.Is(err, store.ErrDropped) {
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	}
	return err
}

// contributionRecord reads the stored contribution c (a CID string the
// node made).
func (n *Node) contributionRecord(ctx context.Context, c string) (*protocol.Block, error) {
	id, err := cid.Decode(c)
	if err != nil {
		return nil, err
	}
	raw, err := n.st.GetRecord(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read record %s: %w", c, notHeld(err))
	}
	b, err := protocol.ParseStored(id, raw)
	if err != nil {
		return nil, fmt.Errorf("stored record %s: %w", c, err)
	}
	if b.Record.Contribution() == nil {
		return nil, fmt.Errorf("stored record %s is a %s, not a contribution", c, b.Record.Type())
	}
	return b, nil
}

// Subscribe opens a commons' event stream after position from ("" for the
// start), keeping the events filter matches. The stream's reader calls
// Next.
func (n *Node) Subscribe(ctx context.Context, commons, from string, filter feed.EventFilter) (*feed.Subscription, error) {
	pos, err := feed.ParsePos(from)
	if err != nil {
		return nil, fmt.Errorf("%w: Last-Event-ID: %w", api.ErrBadRequest, err)
	}
	if filter, err = filter.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	id, err := n.replicated(ctx, commons)
	if err != nil {
		return nil, err
	}
	return n.feeds.Subscribe(id, pos, filter), nil
}

// RawRecord returns a stored record's DAG-CBOR bytes.
func (n *Node) RawRecord(ctx context.Context, c string) ([]byte, error) {
	id, err := cid.Decode(c)
	if err != nil {
		return nil, badRequest("%q is not a CID", c)
	}
	raw, err := n.st.GetRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no record %s here", api.ErrNotFound, c)
	}
	if err != nil {
		return nil, fmt.Errorf("node: read record: %w", notHeld(err))
	}
	return raw, nil
}
