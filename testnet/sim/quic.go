package sim

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// quicOnSimnet is a libp2p option that puts the host's QUIC transport on
// the simulated network: every UDP socket the transport opens is an
// endpoint of sim, with the given link, at the address it listens on.
// go-libp2p's x/simlibp2p offers the same (QUICSimnet), but it imports
// testing and testify, which the commons binary must not link.
func quicOnSimnet(sim *simnet.Simnet, link simnet.NodeBiDiLinkSettings) libp2p.Option {
	src := &endpointIP{}
	return libp2p.QUICReuse(
		func(l fx.Lifecycle, reset quic.StatelessResetKey, token quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
			cm, err := quicreuse.NewConnManager(reset, token, opts...)
			if err != nil {
				return nil, err
			}
			// libp2p closes the connection manager it makes itself, not
			// one made here.
			l.Append(fx.StopHook(cm.Close))
			return cm, nil
		},
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return src, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			src.ip.Store(&addr.IP)
			return sim.NewEndpoint(addr, link), nil
		}),
	)
}

// endpointIP answers quicreuse's question "which source address reaches
// this destination" with the address of the host's simulated endpoint:
// the machine's routing table knows nothing of the simulated network.
type endpointIP struct{ ip atomic.Pointer[net.IP] }

func (e *endpointIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	ip := e.ip.Load()
	if ip == nil {
		return nil, errors.New("sim: no simulated endpoint yet")
	}
	return *ip, nil
}
