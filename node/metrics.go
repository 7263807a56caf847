package node

import (
	"errors"
	"net/http"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
)

// Metrics are a node's Prometheus metrics, in a registry of its own (never
// the global one), served at /metrics. Every name starts with commons_.
// Subsystems outside this file count through its methods, which are safe
// for concurrent use and cheap.
type Metrics struct {
	reg *prometheus.Registry

	ingested        prometheus.Counter
	bannedGossip    prometheus.Counter
	rejected        *prometheus.CounterVec
	validation      prometheus.Histogram
	syncSessions    prometheus.Counter
	syncRounds      prometheus.Counter
	syncBytes       *prometheus.CounterVec
	syncIn, syncOut prometheus.Counter // syncBytes' two series
	blobPeers       *prometheus.CounterVec
	feedCounters    feed.Counters
}

// Rejection reasons, the values of commons_records_rejected_total's reason
// label.
const (
	ReasonBadSignature = "bad_signature"
	ReasonMalformed    = "malformed"
	ReasonTooLarge     = "too_large"
	ReasonInvalid      = "invalid"
	ReasonWrongCommons = "wrong_commons"
	ReasonFutureTime   = "future_time"
)

func newMetrics(n *Node) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.ingested = prometheus.NewCounter(prometheus.CounterOpts{Name: "commons_records_ingested_total", Help: "Records newly stored and merged, from any source."})
	m.bannedGossip = prometheus.NewCounter(prometheus.CounterOpts{Name: "commons_gossip_banned_total", Help: "Gossiped records by banned keys, neither taken nor forwarded (they come by sync, inert)."})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commons_records_rejected_total", Help: "Records refused by validation, by reason (future_time: delayed, not rejected for good)."}, []string{"reason"})
	m.validation = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "commons_gossip_validation_seconds", Help: "Time the gossip topic validator spends on one record.",
		Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3}})
	m.syncSessions = prometheus.NewCounter(prometheus.CounterOpts{Name: "commons_sync_sessions_total", Help: "Sync sessions with peers (either side)."})
	m.syncRounds = prometheus.NewCounter(prometheus.CounterOpts{Name: "commons_sync_rounds_total", Help: "Sync round trips."})
	m.blobPeers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commons_blob_peer_failures_total", Help: "Blob requests a peer failed so that it is asked last from then on (lacking: left out for a while), by reason (bad: a wrong answer or bytes, or a stall while sending; silent: no answer in time; lacking: the last of 32 old payloads in a row it did not have, after which old payloads are not asked of it for a while, unless the other peers fail otherwise)."}, []string{"reason"})
	m.blobPeers.WithLabelValues("bad")
	m.blobPeers.WithLabelValues("silent")
	m.blobPeers.WithLabelValues("lacking")
	m.syncBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commons_sync_bytes_total", Help: "Bytes sent and received by sync, by direction (in, out)."}, []string{"direction"})
	m.feedCounters = feed.Counters{
		Subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "commons_feed_subscribers", Help: "Open live feed (SSE) subscriptions."}),
		Events:      prometheus.NewCounter(prometheus.CounterOpts{Name: "commons_feed_events_total", Help: "Live feed events published (records and status changes)."}),
		Overflows:   prometheus.NewCounter(prometheus.CounterOpts{Name: "commons_feed_overflows_total", Help: "Feed streams ended because the subscriber fell too far behind."}),
	}
	for _, r := range []string{ReasonBadSignature, ReasonMalformed, ReasonTooLarge, ReasonInvalid, ReasonWrongCommons, ReasonFutureTime} {
		m.rejected.WithLabelValues(r)
	}
	m.syncIn, m.syncOut = m.syncBytes.WithLabelValues("in"), m.syncBytes.WithLabelValues("out")
	f(m.ingested)
	f(m.bannedGossip)
	f(m.rejected)
	f(m.validation)
	f(m.syncSessions)
	f(m.syncRounds)
	f(m.syncBytes)
	f(m.blobPeers)
	f(m.feedCounters.Subscribers)
	f(m.feedCounters.Events)
	f(m.feedCounters.Overflows)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "commons_peers", Help: "Connected libp2p peers."}, func() float64 {
		if h := n.host; h != nil {
			return float64(len(h.Network().Peers()))
		}
		return 0
	}))
	f(&storeCollector{n: n, desc: prometheus.NewDesc("commons_store_records", "Records stored per commons and record type.", []string{"commons", "type"}, nil)})
	f(collectors.NewGoCollector())
	return m
}

// Registry returns the node's registry, for callers that add their own
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Ingested counts records newly stored and merged.
func (m *Metrics) Ingested(n int) { m.ingested.Add(float64(n)) }

// BannedGossip counts a gossiped record by a banned key, held back.
func (m *Metrics) BannedGossip() { m.bannedGossip.Inc() }

// Rejected counts a record refused by validation, classified by err (a
// protocol validation error).
func (m *Metrics) Rejected(err error) { m.rejected.WithLabelValues(rejectReason(err)).Inc() }

// ValidationTook observes the time one gossip validation took since start.
func (m *Metrics) ValidationTook(start time.Time) { m.validation.Observe(time.Since(start).Seconds()) }

// SyncSession counts one sync session with a peer, as it starts.
func (m *Metrics) SyncSession() { m.syncSessions.Inc() }

// SyncRounds counts the round trips of a sync session, as it ends.
func (m *Metrics) SyncRounds(n int) { m.syncRounds.Add(float64(n)) }

// BlobPeerFailed counts a blob request a peer failed: "bad", "silent" or
// "lacking".
func (m *Metrics) BlobPeerFailed(reason string) { m.blobPeers.WithLabelValues(reason).Inc() }

// SyncBytes counts sync traffic; in is true for received bytes.
func (m *Metrics) SyncBytes(in bool, n int) {
	if in {
		m.syncIn.Add(float64(n))
	} else {
		m.syncOut.Add(float64(n))
	}
}

func rejectReason(err error) string {
	switch {
	case errors.Is(err, protocol.ErrFutureTime):
		return ReasonFutureTime
	case errors.Is(err, protocol.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, protocol.ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, protocol.ErrWrongCommons):
		return ReasonWrongCommons
	case errors.Is(err, protocol.ErrMalformed), errors.Is(err, protocol.ErrNonCanonical), errors.Is(err, protocol.ErrUnknownType):
		return ReasonMalformed
	}
	return ReasonInvalid
}

// storeCollector reports records per commons and type from the feed
// indexes, without touching the event loop.
type storeCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.n.feeds.Counts(func(id cid.Cid, counts map[protocol.Type]uint64) {
		for _, t := range []protocol.Type{protocol.TypeManifest, protocol.TypeContribution, protocol.TypeReview,
			protocol.TypeProfile, protocol.TypeSponsorship, protocol.TypePledge, protocol.TypeAcknowledgement,
			protocol.TypeDispute, protocol.TypeStatement, protocol.TypeResolution, protocol.TypeCertificate, protocol.TypeRotation} {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[t]), id.String(), string(t))
		}
	})
}

// Metrics returns the node's metrics.
func (n *Node) Metrics() *Metrics { return n.metrics }

// MetricsHandler serves the node's metrics (api.Streamer).
func (n *Node) MetricsHandler() http.Handler { return n.metrics.Handler() }

// The node is what the HTTP API serves.
var (
	_ api.API      = (*Node)(nil)
	_ api.Streamer = (*Node)(nil)
)
