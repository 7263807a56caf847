package sim

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/commons-p2p/commons/node/api"
)

// pollInterval is how often Poll checks its condition.
const pollInterval = 50 * time.Millisecond

// WaitFor lets time pass (virtual inside a synctest bubble) until cond
// holds, checking it every 50ms, and fails the test if it does not hold
// within Options.Timeout. what names the condition in the failure.
func (n *Net) WaitFor(what string, cond func() bool) {
	n.t.Helper()
	if err := n.Poll(cond); err != nil {
		n.t.Fatalf("sim: seed %d: %s: %v", n.opts.Seed, what, err)
	}
}

// Poll checks cond every 50ms of the Net's time until it holds, and
// returns an error if it does not within Options.Timeout. WaitFor is Poll
// failing the test.
func (n *Net) Poll(cond func() bool) error {
	deadline := time.Now().Add(n.opts.Timeout)
	for !cond() {
		if !time.Now().Before(deadline) {
			return fmt.Errorf("still false after %v (virtual)", n.opts.Timeout)
		}
		time.Sleep(pollInterval)
	}
	return nil
}

// Settle lets d pass (virtual inside a synctest bubble), with the network
// running.
func (n *Net) Settle(d time.Duration) { time.Sleep(d) }

// Commons returns node i's status of a commons, and false if the node is
// stopped or does not replicate it.
func (n *Net) Commons(i int, commons string) (api.CommonsStatus, bool) {
	m := n.nodeMember(i)
	if m.node == nil {
		return api.CommonsStatus{}, false
	}
	st, err := m.node.Status(context.Background())
	if err != nil {
		return api.CommonsStatus{}, false
	}
	for _, c := range st.Commons {
		if c.ID == commons {
			return c, true
		}
	}
	return api.CommonsStatus{}, false
}

// MustCommons is Commons failing the test when the status is missing.
func (n *Net) MustCommons(i int, commons string) api.CommonsStatus {
	n.t.Helper()
	c, ok := n.Commons(i, commons)
	if !ok {
		n.t.Fatalf("sim: node %d has no status for commons %s", i, commons)
	}
	return c
}

// Converged reports whether the given nodes (default: every running node)
// all replicate the commons with the same state root, record count and
// manifest head, and nothing waiting. It returns a description of the
// difference when they do not.
func (n *Net) Converged(commons string, nodes ...int) (bool, string) {
	if len(nodes) == 0 {
		nodes = n.Running()
	}
	var first api.CommonsStatus
	var lines []string
	ok := true
	for k, i := range nodes {
		c, has := n.Commons(i, commons)
		if !has {
			ok = false
			lines = append(lines, fmt.Sprintf("node %d: no replica", i))
			continue
		}
		lines = append(lines, fmt.Sprintf("node %d: records %d root %s head %s waiting %d", i, c.Records, c.StateRoot, c.ManifestHead, c.Waiting))
		if c.Waiting != 0 || c.StateRootRecords != c.Records {
			ok = false // still merging, or its root is of fewer records
		}
		if k == 0 {
			first = c
		} else if c.StateRoot != first.StateRoot || c.Records != first.Records || c.ManifestHead != first.ManifestHead {
			ok = false
		}
	}
	return ok, strings.Join(lines, "\n")
}

// WaitConverged waits until Converged holds, and fails the test with each
// node's state if it does not within Options.Timeout.
func (n *Net) WaitConverged(commons string, nodes ...int) {
	n.t.Helper()
	var why string
	err := n.Poll(func() bool {
		var ok bool
		ok, why = n.Converged(commons, nodes...)
		return ok
	})
	if err != nil {
		n.t.Fatalf("sim: seed %d: nodes did not converge on %s: %v\n%s", n.opts.Seed, commons, err, why)
	}
}

// WaitRecords waits until every given node (default: every running node)
// holds at least min records of the commons.
func (n *Net) WaitRecords(commons string, min int, nodes ...int) {
	n.t.Helper()
	if len(nodes) == 0 {
		nodes = n.Running()
	}
	n.WaitFor(fmt.Sprintf("%d records of %s on nodes %v", min, commons, nodes), func() bool {
		for _, i := range nodes {
			if c, ok := n.Commons(i, commons); !ok || c.Records < min {
				return false
			}
		}
		return true
	})
}

// WaitTopicPeers waits until each given node (default: every running
// node) has at least min peers in the commons' gossip topic.
func (n *Net) WaitTopicPeers(commons string, min int, nodes ...int) {
	n.t.Helper()
	if len(nodes) == 0 {
		nodes = n.Running()
	}
	n.WaitFor(fmt.Sprintf("%d topic peers of %s on nodes %v", min, commons, nodes), func() bool {
		for _, i := range nodes {
			if c, ok := n.Commons(i, commons); !ok || c.Peers < min {
				return false
			}
		}
		return true
	})
}

// Status returns the status of record c on node i ("pending", "accepted",
// "rejected"; "" for a record that is not a contribution), or "absent".
func (n *Net) Status(i int, c string) string {
	m := n.nodeMember(i)
	if m.node == nil {
		return "absent"
	}
	info, err := m.node.Show(context.Background(), c)
	if err != nil {
		return "absent"
	}
	return info.Status
}

// WaitStatus waits until contribution c has status want on every given
// node (default: every running node).
func (n *Net) WaitStatus(c, want string, nodes ...int) {
	n.t.Helper()
	if len(nodes) == 0 {
		nodes = n.Running()
	}
	var got []string
	err := n.Poll(func() bool {
		got = got[:0]
		ok := true
		for _, i := range nodes {
			s := n.Status(i, c)
			got = append(got, fmt.Sprintf("node %d: %s", i, s))
			ok = ok && s == want
		}
		return ok
	})
	if err != nil {
		n.t.Fatalf("sim: seed %d: %s is not %s everywhere: %v\n%s", n.opts.Seed, c, want, err, strings.Join(got, "\n"))
	}
}

// JoinAll makes every given node (default: every running node) replicate
// the commons.
func (n *Net) JoinAll(commons string, nodes ...int) {
	n.t.Helper()
	if len(nodes) == 0 {
		nodes = n.Running()
	}
	for _, i := range nodes {
		if err := n.Node(i).Join(context.Background(), commons); err != nil {
			n.t.Fatalf("sim: node %d join %s: %v", i, commons, err)
		}
	}
}
