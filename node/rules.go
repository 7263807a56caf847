package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/store"
)

// derivedSummary is what the node records, per commons, of the state it
// derived: the authority rules it was derived under and its main figures,
// so that a start under other rules can say what changed.
type derivedSummary struct {
	Rules     int    `json:"rules"`
	Records   int    `json:"records"`
	Head      string `json:"head"`
	Accepted  int    `json:"accepted"`
	Rejected  int    `json:"rejected"`
	Pending   int    `json:"pending"`
	Inert     int    `json:"inert"`
	Contested int    `json:"contested"`
}

func rulesKey(rep *replica) string { return "derived/" + rep.id.String() }

// summarise reads a replica's summary. Loop only (or before the loop runs).
func summarise(rep *replica) derivedSummary {
	s := rep.state
	d := derivedSummary{Rules: crdt.RulesVersion, Records: s.Len(), Inert: s.NumInert(), Contested: len(s.ContestedCIDs())}
	d.Pending, d.Accepted, d.Rejected = s.Counts()
	if h, _ := s.Head(); h.Defined() {
		d.Head = h.String()
	}
	return d
}

// noteRules compares the state just derived from a commons' stored records
// with what the store says it was derived under last, logs the re-derivation
// when the authority rules changed since (or the repo predates the record),
// and records the new summary.
func (n *Node) noteRules(ctx context.Context, rep *replica) error {
	now := summarise(rep)
	raw, err := n.st.GetMeta(ctx, rulesKey(rep))
	var was derivedSummary
	switch {
	case errors.Is(err, store.ErrNotFound):
		if now.Records > 0 {
			n.log.Info("re-derived a commons under new authority rules (its repo was written by an earlier version, under rules 1); what the records now mean",
				"commons", rep.id, "rules", now.Rules, "records", now.Records, "head", now.Head,
				"accepted", now.Accepted, "rejected", now.Rejected, "pending", now.Pending, "inert", now.Inert, "contested", now.Contested)
		}
	case err != nil:
		return fmt.Errorf("node: read derived state of %s: %w", rep.id, err)
	default:
		if err := json.Unmarshal(raw, &was); err != nil {
			return fmt.Errorf("node: derived state of %s: stored summary: %w", rep.id, err)
		}
		if was.Rules != now.Rules {
			n.log.Info("re-derived a commons under new authority rules; last recorded under the old rules, now",
				"commons", rep.id, "rules", now.Rules, "stored_rules", was.Rules,
				"head", was.Head+" -> "+now.Head,
				"accepted", fmt.Sprint(was.Accepted, " -> ", now.Accepted), "rejected", fmt.Sprint(was.Rejected, " -> ", now.Rejected),
				"inert", fmt.Sprint(was.Inert, " -> ", now.Inert), "contested", fmt.Sprint(was.Contested, " -> ", now.Contested),
				"records", fmt.Sprint(was.Records, " -> ", now.Records))
		}
	}
	if was == now {
		return nil
	}
	return n.putSummary(ctx, rep, now)
}

// recordDerived records a replica's summary, as the node stops.
func (n *Node) recordDerived(ctx context.Context, rep *replica) error {
	return n.putSummary(ctx, rep, summarise(rep))
}

func (n *Node) putSummary(ctx context.Context, rep *replica, now derivedSummary) error {
	b, err := json.Marshal(now)
	if err != nil {
		return fmt.Errorf("node: derived state of %s: %w", rep.id, err)
	}
	if err := n.st.PutMeta(ctx, rulesKey(rep), b); err != nil {
		return fmt.Errorf("node: record derived state of %s: %w", rep.id, err)
	}
	return nil
}
