package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/protocol"
)

// exchangeTimeout bounds one whole exchange.
const exchangeTimeout = 5 * time.Minute

// maxInvalidPerExchange: a peer that sends this many invalid records in one
// exchange is cut off.
const maxInvalidPerExchange = 16

func writeFrame(w io.Writer, b []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := w.Write(hdr[:k]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if size > uint64(limit) {
		return nil, fmt.Errorf("frame of %d bytes, limit %d", size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func writeMsg(w io.Writer, m *protocol.ExchangeMsg) error {
	b, err := protocol.EncodeExchange(m)
	if err != nil {
		return err
	}
	return writeFrame(w, b)
}

func readMsg(r *bufio.Reader) (*protocol.ExchangeMsg, error) {
	b, err := readFrame(r, protocol.MaxExchangeMessage)
	if err != nil {
		return nil, err
	}
	return protocol.DecodeExchange(b)
}

func links(cs []cid.Cid) []protocol.Link {
	out := make([]protocol.Link, len(cs))
	for i, c := range cs {
		out[i] = protocol.Link{Cid: c}
	}
	return out
}

// serveExchange answers a peer's pull: our CIDs of the commons, then the
// records it wants.
func (n *Node) serveExchange(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(exchangeTimeout))
	r := bufio.NewReader(s)
	w := bufio.NewWriter(s)
	if err := n.serveExchangeOn(r, w); err != nil {
		n.log.Debug("serve exchange", "peer", s.Conn().RemotePeer(), "err", err)
		_ = s.Reset()
	}
}

func (n *Node) serveExchangeOn(r *bufio.Reader, w *bufio.Writer) error {
	req, err := readMsg(r)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if req.Commons == nil {
		return errors.New("first message must name a commons")
	}
	var have []cid.Cid
	if err := n.do(n.ctx, func() {
		if rep := n.commons[req.Commons.Cid]; rep != nil {
			have = rep.state.CIDs()
		}
	}); err != nil {
		return err
	}
	haveSet := make(map[cid.Cid]bool, len(have))
	for len(have) > 0 {
		k := min(len(have), protocol.MaxExchangeBatch)
		for _, c := range have[:k] {
			haveSet[c] = true
		}
		if err := writeMsg(w, &protocol.ExchangeMsg{CIDs: links(have[:k])}); err != nil {
			return err
		}
		have = have[k:]
	}
	if err := writeMsg(w, &protocol.ExchangeMsg{Done: true}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var want []cid.Cid
	for {
		m, err := readMsg(r)
		if err != nil {
			return fmt.Errorf("read wants: %w", err)
		}
		if m.Done {
			break
		}
		for _, l := range m.Want {
			if !haveSet[l.Cid] {
				return fmt.Errorf("peer wants %s, which was not offered", l.Cid)
			}
			delete(haveSet, l.Cid) // each at most once
			want = append(want, l.Cid)
		}
	}
	for _, c := range want {
		raw, err := n.st.GetRecord(n.ctx, c)
		if err != nil {
			return fmt.Errorf("read record %s: %w", c, err)
		}
		if err := writeFrame(w, raw); err != nil {
			return err
		}
	}
	return w.Flush()
}

// pull fetches from peer p every record of a commons that p has and this
// node lacks, validating each as gossip would. It returns how many records
// were added.
func (n *Node) pull(ctx context.Context, p peer.ID, id cid.Cid) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, protocol.ExchangeProtocol)
	if err != nil {
		return 0, fmt.Errorf("open exchange stream: %w", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(exchangeTimeout))
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	got, err := n.pullOn(ctx, r, w, id)
	if err != nil {
		_ = s.Reset()
	}
	return got, err
}

func (n *Node) pullOn(ctx context.Context, r *bufio.Reader, w *bufio.Writer, id cid.Cid) (int, error) {
	if err := writeMsg(w, &protocol.ExchangeMsg{Commons: &protocol.Link{Cid: id}}); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	var want []cid.Cid
	for {
		m, err := readMsg(r)
		if err != nil {
			return 0, fmt.Errorf("read offered CIDs: %w", err)
		}
		if m.Done {
			break
		}
		if len(m.CIDs) == 0 {
			return 0, errors.New("peer sent a message other than cids before done")
		}
		var missing []cid.Cid
		if err := n.do(ctx, func() {
			rep := n.commons[id]
			for _, l := range m.CIDs {
				if rep == nil || !rep.state.Has(l.Cid) {
					missing = append(missing, l.Cid)
				}
			}
		}); err != nil {
			return 0, err
		}
		want = append(want, missing...)
	}
	wanted := make(map[cid.Cid]bool, len(want))
	for i := 0; i < len(want); i += protocol.MaxExchangeBatch {
		batch := want[i:min(len(want), i+protocol.MaxExchangeBatch)]
		for _, c := range batch {
			wanted[c] = true
		}
		if err := writeMsg(w, &protocol.ExchangeMsg{Want: links(batch)}); err != nil {
			return 0, err
		}
	}
	if err := writeMsg(w, &protocol.ExchangeMsg{Done: true}); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return n.receiveRecords(ctx, r, wanted, id)
}

// receiveRecords reads the records a peer streams, validates them in
// batches and ingests them.
func (n *Node) receiveRecords(ctx context.Context, r *bufio.Reader, wanted map[cid.Cid]bool, id cid.Cid) (int, error) {
	const batchSize = 128
	added, invalid := 0, 0
	batch := make([]*protocol.Block, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		good := n.screen(batch, id, func(b *protocol.Block, err error) {
			if errors.Is(err, protocol.ErrFutureTime) {
				n.log.Debug("exchange: record delayed", "cid", b.CID, "err", err)
				return
			}
			invalid++
			n.log.Warn("exchange: invalid record from peer", "cid", b.CID, "err", err)
		})
		batch = batch[:0]
		if len(good) == 0 {
			return nil
		}
		res, err := n.ingest(ctx, good, false)
		if err != nil {
			return err
		}
		for _, a := range res.added {
			if a {
				added++
			}
		}
		return nil
	}
	for len(wanted) > 0 {
		raw, err := readFrame(r, protocol.MaxRecordSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			_ = flush()
			return added, fmt.Errorf("read record: %w", err)
		}
		b, err := protocol.Parse(raw)
		if err != nil {
			invalid++
			n.log.Warn("exchange: invalid record from peer", "err", err)
		} else if !wanted[b.CID] {
			_ = flush()
			return added, fmt.Errorf("peer sent %s, which was not asked for", b.CID)
		} else {
			delete(wanted, b.CID)
			batch = append(batch, b)
		}
		if invalid >= maxInvalidPerExchange {
			_ = flush()
			return added, fmt.Errorf("peer sent %d invalid records", invalid)
		}
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return added, err
			}
		}
	}
	return added, flush()
}

// screen verifies a batch of parsed blocks: signatures (batch
// verification), the commons when want is defined, and the clock. It
// returns the blocks that pass and calls reject with each other one and why.
func (n *Node) screen(blocks []*protocol.Block, want cid.Cid, reject func(*protocol.Block, error)) []*protocol.Block {
	errs := protocol.VerifyBatch(blocks)
	now := n.nowMillis()
	good := blocks[:0:0]
	for i, b := range blocks {
		err := errs[i]
		if err == nil && want.Defined() && !commonsOf(b).Equals(want) {
			err = fmt.Errorf("record %s belongs to commons %s, not %s", b.CID, commonsOf(b), want)
		}
		if err == nil {
			err = protocol.CheckTime(b.Record, now)
		}
		if err != nil {
			reject(b, err)
			continue
		}
		good = append(good, b)
	}
	return good
}
