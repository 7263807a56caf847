//go:build linux && (amd64 || arm64)

package node

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// soReusePort is SO_REUSEPORT on Linux (amd64, arm64), which package
// syscall does not name.
const soReusePort = 0xf

// reusePortListen listens on TCP as go-libp2p's TCP transport does: with
// SO_REUSEPORT, which lets a second such socket bind the same port.
func reusePortListen(t *testing.T, addr string) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestProbeListen(t *testing.T) {
	tcp := reusePortListen(t, "127.0.0.1:0")
	reusePortListen(t, tcp.Addr().String()) // what libp2p alone allows
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcpPort := tcp.Addr().(*net.TCPAddr).AddrPort().Port()
	udpPort := udp.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	inUse := []string{
		"/ip4/127.0.0.1/tcp/" + itoa(tcpPort),
		"/ip4/0.0.0.0/tcp/" + itoa(tcpPort),
		"/ip4/127.0.0.1/udp/" + itoa(udpPort) + "/quic-v1",
	}
	for _, a := range inUse {
		err := probeListen([]string{"/ip4/127.0.0.1/tcp/0", a})
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "listen on "+a+": address already in use") {
			t.Errorf("probeListen(%s) = %v, want EADDRINUSE naming the address", a, err)
		}
	}
	for _, ok := range [][]string{
		{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		{"/p2p-circuit", "/dns4/localhost/tcp/" + itoa(tcpPort)}, // nothing that binds an IP's port
	} {
		if err := probeListen(ok); err != nil {
			t.Errorf("probeListen(%v) = %v", ok, err)
		}
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
