package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// A Lab is a set of Linux network namespaces joined by veth pairs and
// bridges, for running real commons daemons on separate hosts of one
// machine: a public segment, routers that masquerade private LANs behind
// their public address (nftables), and hosts on either. It drives iproute2's
// ip and nft, so it needs root on Linux.
//
// Every namespace a Lab makes is named after the process (cmn<pid>.<n>-),
// so concurrent runs do not collide, Close deletes them all, and NewLab
// deletes those left by processes that died before they could.
// Interfaces are made inside the namespaces: nothing is added to the
// machine's own namespace, and only the addresses a test gives are used.
type Lab struct {
	prefix string

	mu    sync.Mutex
	names []string // namespaces made, in order
}

// ErrNoLab is returned by NewLab when this machine cannot make network
// namespaces: not Linux, not root, or iproute2 or nftables missing.
var ErrNoLab = errors.New("testnet: cannot make network namespaces")

var labSeq atomic.Int64

// labName matches the namespaces of any Lab: cmn<pid>.<n>-<name>.
var labName = regexp.MustCompile(`^cmn([0-9]+)\.[0-9]+-`)

// NewLab checks that namespaces can be made (it wraps ErrNoLab when not),
// deletes namespaces left over by dead processes, and returns an empty Lab.
func NewLab() (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not root", ErrNoLab)
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoLab, tool, err)
		}
	}
	removeStaleNamespaces()
	l := &Lab{prefix: fmt.Sprintf("cmn%d.%d-", os.Getpid(), labSeq.Add(1))}
	return l, nil
}

// removeStaleNamespaces deletes the namespaces of Labs whose process is gone
// (a test binary killed by its timeout runs no cleanup).
func removeStaleNamespaces() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		m := labName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = exec.Command("ip", "netns", "delete", e.Name()).Run()
	}
}

// run runs a command and returns its error with the command's output.
func run(stdin string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ip runs "ip -n NS args..." in one of the Lab's namespaces.
func (l *Lab) ip(ns string, args ...string) error {
	return run("", "ip", append([]string{"-n", ns}, args...)...)
}

// Namespace makes a namespace (its full name is the Lab's prefix and
// name) with its loopback up, and returns its full name.
func (l *Lab) Namespace(name string) (string, error) {
	full := l.prefix + name
	if err := run("", "ip", "netns", "add", full); err != nil {
		return "", err
	}
	l.mu.Lock()
	l.names = append(l.names, full)
	l.mu.Unlock()
	if err := l.ip(full, "link", "set", "lo", "up"); err != nil {
		return "", err
	}
	return full, nil
}

// Command returns a command that runs name with args inside a namespace
// (ip netns exec, which execs in place: the command's PID is the
// program's). It dies with the calling thread's process.
func (l *Lab) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// A Segment is one layer-2 network: a bridge in some namespace, an IPv4
// prefix, and the gateway hosts on it route through (invalid: none, the
// segment is the whole world its hosts reach).
type Segment struct {
	NS      string
	Bridge  string
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// Switch makes a namespace holding only a bridge: a segment with no
// gateway, such as the stand-in for the public internet.
func (l *Lab) Switch(name string, prefix netip.Prefix) (*Segment, error) {
	ns, err := l.Namespace(name)
	if err != nil {
		return nil, err
	}
	if err := l.ip(ns, "link", "add", "name", "br0", "type", "bridge"); err != nil {
		return nil, err
	}
	if err := l.ip(ns, "link", "set", "br0", "up"); err != nil {
		return nil, err
	}
	return &Segment{NS: ns, Bridge: "br0", Prefix: prefix}, nil
}

// plug connects a new interface dev in namespace ns to a segment's bridge
// and gives it addr; the bridge's end is named p-<name>.
func (l *Lab) plug(seg *Segment, name, ns, dev string, addr netip.Addr) error {
	port := "p-" + name
	if len(port) > 15 {
		return fmt.Errorf("testnet: interface name %q is longer than 15 bytes", port)
	}
	if err := l.ip(seg.NS, "link", "add", "name", port, "type", "veth", "peer", "name", dev, "netns", ns); err != nil {
		return err
	}
	if err := l.ip(seg.NS, "link", "set", port, "master", seg.Bridge, "up"); err != nil {
		return err
	}
	pfx := netip.PrefixFrom(addr, seg.Prefix.Bits())
	if err := l.ip(ns, "addr", "add", pfx.String(), "dev", dev); err != nil {
		return err
	}
	return l.ip(ns, "link", "set", dev, "up")
}

// A Host is a namespace with one interface, eth0, on a segment.
type Host struct {
	Name string
	NS   string
	Addr netip.Addr
}

// Host makes a namespace with eth0 on seg at addr, and a default route
// through the segment's gateway if it has one.
func (l *Lab) Host(name string, seg *Segment, addr netip.Addr) (*Host, error) {
	ns, err := l.Namespace(name)
	if err != nil {
		return nil, err
	}
	if err := l.plug(seg, name, ns, "eth0", addr); err != nil {
		return nil, err
	}
	if seg.Gateway.IsValid() {
		if err := l.ip(ns, "route", "add", "default", "via", seg.Gateway.String()); err != nil {
			return nil, err
		}
	}
	return &Host{Name: name, NS: ns, Addr: addr}, nil
}

// routerRules masquerades what leaves by wan, forwards only what the LAN
// started (and its replies), and silently drops anything else that comes
// in from wan, as a home router does.
const routerRules = `table ip nat {
	chain masq {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" masquerade
	}
}
table inet filter {
	chain guard {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" accept
	}
	chain in {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state established,related accept
		iifname "wan" drop
	}
}
`

// A Router is a NAT router: wan on an upstream segment, and a LAN bridge
// (lan) whose segment it returns from LAN.
type Router struct {
	Name string
	NS   string
	WAN  netip.Addr
	LAN  *Segment
}

// Router makes a NAT router with interface wan on upstream at wan and a
// bridge lan holding the first address of lan: hosts on the returned
// router's LAN reach upstream only through masquerade.
func (l *Lab) Router(name string, upstream *Segment, wan netip.Addr, lan netip.Prefix) (*Router, error) {
	ns, err := l.Namespace(name)
	if err != nil {
		return nil, err
	}
	if err := l.plug(upstream, name, ns, "wan", wan); err != nil {
		return nil, err
	}
	gw := lan.Masked().Addr().Next()
	if err := l.ip(ns, "link", "add", "name", "lan", "type", "bridge"); err != nil {
		return nil, err
	}
	if err := l.ip(ns, "addr", "add", netip.PrefixFrom(gw, lan.Bits()).String(), "dev", "lan"); err != nil {
		return nil, err
	}
	if err := l.ip(ns, "link", "set", "lan", "up"); err != nil {
		return nil, err
	}
	if err := run("", "ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return nil, err
	}
	if err := run(routerRules, "ip", "netns", "exec", ns, "nft", "-f", "-"); err != nil {
		return nil, err
	}
	return &Router{Name: name, NS: ns, WAN: wan, LAN: &Segment{NS: ns, Bridge: "lan", Prefix: lan.Masked(), Gateway: gw}}, nil
}

// SetLink sets an interface of a namespace up or down: a router's "wan"
// down cuts its LAN off from everything upstream.
func (l *Lab) SetLink(ns, dev string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return l.ip(ns, "link", "set", dev, state)
}

// Close deletes every namespace the Lab made, with their interfaces; the
// processes running in them should be stopped first. It returns the first
// error.
func (l *Lab) Close() error {
	l.mu.Lock()
	names := l.names
	l.names = nil
	l.mu.Unlock()
	var first error
	for i := len(names) - 1; i >= 0; i-- {
		if err := run("", "ip", "netns", "delete", names[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}
