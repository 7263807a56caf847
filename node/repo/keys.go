package repo

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ConfigKey documents one setting of the repo's config file.
type ConfigKey struct {
	Name string
	// Kind is the value's type, taken from its Settings field: list (of
	// strings), string, bool, int or duration.
	Kind string
	Doc  string
	// field points at the key's field in s.
	field func(s *Settings) any
	// check, when not nil, refuses values outside the key's range.
	check func(v any) error
}

// setting declares a key: its Kind follows from the type of the Settings
// field it fills.
func setting(name, doc string, field func(s *Settings) any, check func(any) error) ConfigKey {
	return ConfigKey{Name: name, Kind: kindOf(field(&Settings{})), Doc: doc, field: field, check: check}
}

func kindOf(field any) string {
	switch field.(type) {
	case *[]string:
		return "list"
	case *bool:
		return "bool"
	case *int:
		return "int"
	case *time.Duration:
		return "duration"
	case *string:
		return "string"
	}
	panic(fmt.Sprintf("repo: setting of unsupported type %T", field))
}

// configKeys is the one table of settings: name, type (by field), meaning
// and range. Their defaults are in Defaults.
var configKeys = []ConfigKey{
	setting("listen", "libp2p listen multiaddrs",
		func(s *Settings) any { return &s.Listen }, eachMultiaddr),
	setting("announce", "multiaddrs to announce instead of the detected ones (a bootstrap node's public addresses); empty: detected",
		func(s *Settings) any { return &s.Announce }, eachMultiaddr),
	setting("api", "HTTP API address host:port (port 0: a free port); loopback unless you mean it",
		func(s *Settings) any { return &s.API }, hostPort),
	setting("api_hosts", "host names the HTTP API answers besides loopback ones (localhost, IP addresses): a browser sends the name it was given, so a page served by another name (DNS rebinding) is refused",
		func(s *Settings) any { return &s.APIHosts }, eachHostName),
	setting("bootstrap", "peers to connect to at start (multiaddrs ending in /p2p/<peer-id>), besides those the manifests name",
		func(s *Settings) any { return &s.Bootstrap }, eachPeerAddr),
	setting("profile", "default (a contributor's daemon) or bootstrap (a foundation's always-on node: DHT server, relay service, public reachability, higher limits)",
		func(s *Settings) any { return &s.Profile }, oneOf(ProfileDefault, ProfileBootstrap)),
	setting("mdns", "find peers on the local network by multicast DNS",
		func(s *Settings) any { return &s.MDNS }, nil),
	setting("dht", "Kademlia DHT (protocol /commons/kad/1.0.0) to find each commons' peers: auto (server once publicly reachable), client, server or off",
		func(s *Settings) any { return &s.DHT }, oneOf("auto", "client", "server", "off")),
	setting("autonat", "learn this node's reachability by asking peers to dial back (AutoNAT), and answer such requests",
		func(s *Settings) any { return &s.AutoNAT }, nil),
	setting("relay_client", "when not publicly reachable, reserve a slot on a circuit relay v2 (the bootstrap peers) and announce the relayed address",
		func(s *Settings) any { return &s.RelayClient }, nil),
	setting("relay_service", "offer circuit relay v2 to other peers (limited, for hole punching)",
		func(s *Settings) any { return &s.RelayService }, nil),
	setting("hole_punching", "upgrade relayed connections to direct ones by hole punching (DCUtR)",
		func(s *Settings) any { return &s.HolePunching }, nil),
	setting("reachability", "auto (learn it by AutoNAT), public or private (assume it)",
		func(s *Settings) any { return &s.Reachability }, oneOf("auto", "public", "private")),
	setting("conn_low", "connections the connection manager trims down to",
		func(s *Settings) any { return &s.ConnLow }, positive),
	setting("conn_high", "connections above which the connection manager starts trimming; the resource manager's limits scale with it",
		func(s *Settings) any { return &s.ConnHigh }, positive),
	setting("sync_interval", "how often to sync each commons with one random peer, besides on every new connection",
		func(s *Settings) any { return &s.SyncInterval }, atLeastOneSecond),
	setting("log_level", "the daemon's log level: debug, info, warn or error (--log-level wins)",
		func(s *Settings) any { return &s.LogLevel }, oneOf("debug", "info", "warn", "error")),
	setting("memory_limit", "soft limit of the process's Go heap, in MiB: the garbage collector works harder as the heap nears it, so a large import or join stays near it (0: no limit; $GOMEMLIMIT, when set, wins)",
		func(s *Settings) any { return &s.MemoryLimit }, notNegative),
	setting("disk_margin", "space, in MiB, kept free on the disk that holds the repo: below it the node stores nothing (the API answers 507, commands exit 1 saying so) and keeps serving reads, until space returns (0: no margin, not advised: badger's largest writes, a memtable flush and a compaction out of level 0, take up to about 200 MiB at once, and a full disk stops its memory-mapped writes)",
		func(s *Settings) any { return &s.DiskMargin }, notNegative),
}

func oneOf(vals ...string) func(any) error {
	return func(v any) error {
		if !slices.Contains(vals, v.(string)) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(vals, ", "))
		}
		return nil
	}
}

func eachMultiaddr(v any) error {
	for _, s := range v.([]string) {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fmt.Errorf("%q is not a multiaddr: %w", s, err)
		}
	}
	return nil
}

func eachHostName(v any) error {
	for _, s := range v.([]string) {
		if s == "" || strings.ContainsAny(s, ":/ ") {
			return fmt.Errorf("%q is not a host name (no port, no scheme)", s)
		}
	}
	return nil
}

func eachPeerAddr(v any) error {
	for _, s := range v.([]string) {
		if _, err := ParsePeerAddr(s); err != nil {
			return err
		}
	}
	return nil
}

// ParsePeerAddr parses a peer's address as the bootstrap setting and the
// manifests give it: a multiaddr that ends in /p2p/<peer-id>.
func ParsePeerAddr(s string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a multiaddr: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("%q does not end in /p2p/<peer-id>: %w", s, err)
	}
	return ai, nil
}

func hostPort(v any) error {
	if _, _, err := net.SplitHostPort(v.(string)); err != nil {
		return fmt.Errorf("%q is not host:port", v)
	}
	return nil
}

func notNegative(v any) error {
	if v.(int) < 0 {
		return fmt.Errorf("%d: want 0 or more", v)
	}
	return nil
}

func positive(v any) error {
	if v.(int) < 1 {
		return fmt.Errorf("%d: want at least 1", v)
	}
	return nil
}

func atLeastOneSecond(v any) error {
	if d, _ := time.ParseDuration(v.(string)); d < time.Second {
		return fmt.Errorf("%q: want a duration of at least 1s, like 30s or 5m", v)
	}
	return nil
}

// ConfigKeys lists every setting of the config file, in order.
func ConfigKeys() []ConfigKey { return slices.Clone(configKeys) }

func lookupKey(name string) (ConfigKey, error) {
	if i := keyIndex(name); i >= 0 {
		return configKeys[i], nil
	}
	names := make([]string, len(configKeys))
	for i, k := range configKeys {
		names[i] = k.Name
	}
	return ConfigKey{}, fmt.Errorf("config: unknown key %q (keys: %s)", name, strings.Join(names, ", "))
}

func keyIndex(name string) int {
	return slices.IndexFunc(configKeys, func(k ConfigKey) bool { return k.Name == name })
}

// EnvName is the environment variable that overrides a key.
func (k ConfigKey) EnvName() string { return "COMMONS_" + strings.ToUpper(k.Name) }

// Values of a key, as parseText and parseJSON return them and
// ConfigSetting shows them, are []string, string, bool or int; a duration
// stays the string it was given as ("1m", not "1m0s").

// value returns the key's value in s.
func (k ConfigKey) value(s *Settings) any {
	switch p := k.field(s).(type) {
	case *[]string:
		return slices.Clone(*p)
	case *bool:
		return *p
	case *int:
		return *p
	case *time.Duration:
		return p.String()
	case *string:
		return *p
	}
	return nil
}

// set puts a value, already validated, into the key's field of s.
func (k ConfigKey) set(s *Settings, v any) {
	switch p := k.field(s).(type) {
	case *[]string:
		*p = v.([]string)
	case *bool:
		*p = v.(bool)
	case *int:
		*p = v.(int)
	case *time.Duration:
		*p, _ = time.ParseDuration(v.(string))
	case *string:
		*p = v.(string)
	}
}

// parseText parses a value as typed by a user (command line or
// environment): lists are comma-separated or a JSON array.
func (k ConfigKey) parseText(s string) (any, error) {
	s = strings.TrimSpace(s)
	var v any
	switch k.Kind {
	case "list":
		l := []string{}
		if strings.HasPrefix(s, "[") {
			if err := json.Unmarshal([]byte(s), &l); err != nil {
				return nil, fmt.Errorf("config: %s: %q is not a JSON array of strings", k.Name, s)
			}
		} else {
			for _, e := range strings.Split(s, ",") {
				if e = strings.TrimSpace(e); e != "" {
					l = append(l, e)
				}
			}
		}
		v = l
	case "bool":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %q is not true or false", k.Name, s)
		}
		v = b
	case "int":
		i, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %q is not a whole number", k.Name, s)
		}
		v = i
	default:
		v = s
	}
	return v, k.validate(v)
}

// parseJSON parses a value as stored in the config file.
func (k ConfigKey) parseJSON(raw json.RawMessage) (any, error) {
	v, err := k.decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	return v, k.validate(v)
}

// decodeJSON decodes a value of the key's kind, without checking its
// range.
func (k ConfigKey) decodeJSON(raw json.RawMessage) (any, error) {
	var v any
	var err error
	switch k.Kind {
	case "list":
		var l []string
		err = json.Unmarshal(raw, &l)
		if l == nil {
			l = []string{}
		}
		v = l
	case "bool":
		var b bool
		err = json.Unmarshal(raw, &b)
		v = b
	case "int":
		var i int
		err = json.Unmarshal(raw, &i)
		v = i
	default:
		var s string
		err = json.Unmarshal(raw, &s)
		v = s
	}
	if err != nil {
		return nil, fmt.Errorf("config: %s: want a %s: %s", k.Name, kindWord(k.Kind), raw)
	}
	return v, nil
}

func kindWord(kind string) string {
	switch kind {
	case "list":
		return "JSON array of strings"
	case "bool":
		return "true or false"
	case "int":
		return "whole number"
	case "duration":
		return "duration string like \"30s\""
	}
	return "string"
}

func (k ConfigKey) validate(v any) error {
	if k.Kind == "duration" {
		if _, err := time.ParseDuration(v.(string)); err != nil {
			return fmt.Errorf("config: %s: %q is not a duration (like 30s, 5m)", k.Name, v)
		}
	}
	if k.check != nil {
		if err := k.check(v); err != nil {
			return fmt.Errorf("config: %s: %w", k.Name, err)
		}
	}
	return nil
}
