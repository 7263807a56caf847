package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// Profiles a daemon runs under. A profile only changes defaults: a setting
// given in the config file or the environment wins over it.
const (
	// ProfileDefault suits a contributor's daemon, often behind a home
	// router: DHT client, relay client, hole punching, mDNS.
	ProfileDefault = "default"
	// ProfileBootstrap suits a foundation's always-on node with a public
	// address: DHT server, circuit relay v2 service, public reachability,
	// higher connection limits.
	ProfileBootstrap = "bootstrap"
)

// Settings are a daemon's effective settings: defaults, then the profile's
// defaults, then the repo's config file, then COMMONS_* environment
// variables. See ConfigKeys for what each means.
type Settings struct {
	Listen       []string
	Announce     []string
	API          string
	Bootstrap    []string
	Profile      string
	MDNS         bool
	DHT          string // auto, client, server, off
	AutoNAT      bool
	RelayClient  bool
	RelayService bool
	HolePunching bool
	Reachability string // auto, public, private
	ConnLow      int
	ConnHigh     int
	SyncInterval time.Duration
	LogLevel     string
}

// ConfigKey documents one setting of the repo's config file.
type ConfigKey struct {
	Name string
	// Kind is the value's type: list (of strings), string, bool, int or
	// duration.
	Kind string
	Doc  string
	// def returns the default under a profile, as JSON.
	def   func(profile string) any
	check func(v any) error
	apply func(s *Settings, v any)
}

// ConfigSetting is one setting's effective value and where it came from.
type ConfigSetting struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"` // default, profile, config, env, flag
	Doc    string `json:"doc"`
}

func constant(v any) func(string) any { return func(string) any { return v } }

func byProfile(def, bootstrap any) func(string) any {
	return func(p string) any {
		if p == ProfileBootstrap {
			return bootstrap
		}
		return def
	}
}

func oneOf(vals ...string) func(any) error {
	return func(v any) error {
		if !slices.Contains(vals, v.(string)) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(vals, ", "))
		}
		return nil
	}
}

func eachMultiaddr(peerAddr bool) func(any) error {
	return func(v any) error {
		for _, s := range v.([]string) {
			if peerAddr {
				if _, err := parsePeerAddr(s); err != nil {
					return err
				}
				continue
			}
			if _, err := ma.NewMultiaddr(s); err != nil {
				return fmt.Errorf("%q is not a multiaddr: %v", s, err)
			}
		}
		return nil
	}
}

var configKeys = []ConfigKey{
	{Name: "listen", Kind: "list", Doc: "libp2p listen multiaddrs",
		def: constant(DefaultListen), check: eachMultiaddr(false),
		apply: func(s *Settings, v any) { s.Listen = v.([]string) }},
	{Name: "announce", Kind: "list", Doc: "multiaddrs to announce instead of the detected ones (a bootstrap node's public addresses); empty: detected",
		def: constant([]string{}), check: eachMultiaddr(false),
		apply: func(s *Settings, v any) { s.Announce = v.([]string) }},
	{Name: "api", Kind: "string", Doc: "HTTP API address host:port (port 0: a free port); loopback unless you mean it",
		def: constant(DefaultAPIAddr),
		check: func(v any) error {
			if _, _, err := net.SplitHostPort(v.(string)); err != nil {
				return fmt.Errorf("%q is not host:port", v)
			}
			return nil
		},
		apply: func(s *Settings, v any) { s.API = v.(string) }},
	{Name: "bootstrap", Kind: "list", Doc: "peers to connect to at start (multiaddrs ending in /p2p/<peer-id>), besides those the manifests name",
		def: constant([]string{}), check: eachMultiaddr(true),
		apply: func(s *Settings, v any) { s.Bootstrap = v.([]string) }},
	{Name: "profile", Kind: "string", Doc: "default (a contributor's daemon) or bootstrap (a foundation's always-on node: DHT server, relay service, public reachability, higher limits)",
		def: constant(ProfileDefault), check: oneOf(ProfileDefault, ProfileBootstrap),
		apply: func(s *Settings, v any) { s.Profile = v.(string) }},
	{Name: "mdns", Kind: "bool", Doc: "find peers on the local network by multicast DNS",
		def: constant(true), apply: func(s *Settings, v any) { s.MDNS = v.(bool) }},
	{Name: "dht", Kind: "string", Doc: "Kademlia DHT (protocol /commons/kad/1.0.0) to find each commons' peers: auto (server once publicly reachable), client, server or off",
		def: byProfile("auto", "server"), check: oneOf("auto", "client", "server", "off"),
		apply: func(s *Settings, v any) { s.DHT = v.(string) }},
	{Name: "autonat", Kind: "bool", Doc: "learn this node's reachability by asking peers to dial back (AutoNAT), and answer such requests",
		def: constant(true), apply: func(s *Settings, v any) { s.AutoNAT = v.(bool) }},
	{Name: "relay_client", Kind: "bool", Doc: "when not publicly reachable, reserve a slot on a circuit relay v2 (the bootstrap peers) and announce the relayed address",
		def: byProfile(true, false), apply: func(s *Settings, v any) { s.RelayClient = v.(bool) }},
	{Name: "relay_service", Kind: "bool", Doc: "offer circuit relay v2 to other peers (limited, for hole punching)",
		def: byProfile(false, true), apply: func(s *Settings, v any) { s.RelayService = v.(bool) }},
	{Name: "hole_punching", Kind: "bool", Doc: "upgrade relayed connections to direct ones by hole punching (DCUtR)",
		def: constant(true), apply: func(s *Settings, v any) { s.HolePunching = v.(bool) }},
	{Name: "reachability", Kind: "string", Doc: "auto (learn it by AutoNAT), public or private (assume it)",
		def: byProfile("auto", "public"), check: oneOf("auto", "public", "private"),
		apply: func(s *Settings, v any) { s.Reachability = v.(string) }},
	{Name: "conn_low", Kind: "int", Doc: "connections the connection manager trims down to",
		def: byProfile(100, 800), check: positive,
		apply: func(s *Settings, v any) { s.ConnLow = v.(int) }},
	{Name: "conn_high", Kind: "int", Doc: "connections above which the connection manager starts trimming; the resource manager's limits scale with it",
		def: byProfile(400, 2000), check: positive,
		apply: func(s *Settings, v any) { s.ConnHigh = v.(int) }},
	{Name: "sync_interval", Kind: "duration", Doc: "how often to sync each commons with one random peer, besides on every new connection",
		def: constant("30s"),
		check: func(v any) error {
			if d, _ := time.ParseDuration(v.(string)); d < time.Second {
				return fmt.Errorf("%q: want a duration of at least 1s, like 30s or 5m", v)
			}
			return nil
		},
		apply: func(s *Settings, v any) { s.SyncInterval, _ = time.ParseDuration(v.(string)) }},
	{Name: "log_level", Kind: "string", Doc: "the daemon's log level: debug, info, warn or error (--log-level wins)",
		def: constant("info"), check: oneOf("debug", "info", "warn", "error"),
		apply: func(s *Settings, v any) { s.LogLevel = v.(string) }},
}

func positive(v any) error {
	if v.(int) < 1 {
		return fmt.Errorf("%d: want at least 1", v)
	}
	return nil
}

// ConfigKeys lists every setting of the config file, in order.
func ConfigKeys() []ConfigKey { return slices.Clone(configKeys) }

func lookupKey(name string) (ConfigKey, error) {
	for _, k := range configKeys {
		if k.Name == name {
			return k, nil
		}
	}
	names := make([]string, len(configKeys))
	for i, k := range configKeys {
		names[i] = k.Name
	}
	return ConfigKey{}, fmt.Errorf("config: unknown key %q (keys: %s)", name, strings.Join(names, ", "))
}

// EnvName is the environment variable that overrides a key.
func (k ConfigKey) EnvName() string { return "COMMONS_" + strings.ToUpper(k.Name) }

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
	return v, k.validate(v)
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
			return fmt.Errorf("config: %s: %v", k.Name, err)
		}
	}
	return nil
}

// configFileValues reads the config file's values by key; a missing file
// is an empty config.
func (r *Repo) configFileValues() (map[string]json.RawMessage, error) {
	path := filepath.Join(r.Dir, configFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]json.RawMessage{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read config: %w", err)
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("node: config %s is not a JSON object: %w", path, err)
	}
	for name := range m {
		if _, err := lookupKey(name); err != nil {
			return nil, fmt.Errorf("node: config %s: %w", path, err)
		}
	}
	return m, nil
}

// Settings returns the repo's effective settings and where each came from:
// defaults, the profile's defaults, the config file, then env (a lookup of
// environment variables; nil for none). profile, when not empty, overrides
// the profile from the file and env (the daemon's --profile flag).
func (r *Repo) Settings(env func(string) (string, bool), profile string) (Settings, []ConfigSetting, error) {
	file, err := r.configFileValues()
	if err != nil {
		return Settings{}, nil, err
	}
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	values := make(map[string]any, len(configKeys))
	sources := make(map[string]string, len(configKeys))
	for _, k := range configKeys {
		if raw, ok := file[k.Name]; ok {
			v, err := k.parseJSON(raw)
			if err != nil {
				return Settings{}, nil, fmt.Errorf("node: %s: %w", filepath.Join(r.Dir, configFile), err)
			}
			values[k.Name], sources[k.Name] = v, "config"
		}
		if s, ok := env(k.EnvName()); ok && s != "" { // empty: unset
			v, err := k.parseText(s)
			if err != nil {
				return Settings{}, nil, fmt.Errorf("node: $%s: %w", k.EnvName(), err)
			}
			values[k.Name], sources[k.Name] = v, "env"
		}
	}
	if profile != "" {
		k, _ := lookupKey("profile")
		if err := k.validate(profile); err != nil {
			return Settings{}, nil, fmt.Errorf("node: --profile: %w", err)
		}
		values["profile"], sources["profile"] = profile, "flag"
	}
	prof := ProfileDefault
	if p, ok := values["profile"]; ok {
		prof = p.(string)
	}
	var s Settings
	out := make([]ConfigSetting, 0, len(configKeys))
	for _, k := range configKeys {
		v, ok := values[k.Name]
		if !ok {
			v, sources[k.Name] = k.def(prof), "default"
			if prof != ProfileDefault && !sameJSON(v, k.def(ProfileDefault)) {
				sources[k.Name] = "profile"
			}
			if l, isList := v.([]string); isList {
				v = slices.Clone(l)
			}
		}
		k.apply(&s, v)
		out = append(out, ConfigSetting{Key: k.Name, Value: v, Source: sources[k.Name], Doc: k.Doc})
	}
	if s.ConnHigh < s.ConnLow {
		return Settings{}, nil, fmt.Errorf("node: config: conn_high (%d) is below conn_low (%d)", s.ConnHigh, s.ConnLow)
	}
	return s, out, nil
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// SetConfig validates value for key and writes it into the config file,
// keeping the other settings. An empty value for a list clears it.
func (r *Repo) SetConfig(key, value string) error {
	k, err := lookupKey(key)
	if err != nil {
		return err
	}
	v, err := k.parseText(value)
	if err != nil {
		return err
	}
	file, err := r.configFileValues()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	file[k.Name] = raw
	return r.writeConfigValues(file)
}

// UnsetConfig removes key from the config file: it takes its default again.
func (r *Repo) UnsetConfig(key string) error {
	k, err := lookupKey(key)
	if err != nil {
		return err
	}
	file, err := r.configFileValues()
	if err != nil {
		return err
	}
	delete(file, k.Name)
	return r.writeConfigValues(file)
}

func (r *Repo) writeConfigValues(file map[string]json.RawMessage) error {
	names := make([]string, 0, len(file))
	for n := range file {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return keyIndex(names[i]) < keyIndex(names[j]) })
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, n := range names {
		fmt.Fprintf(&buf, "  %q: %s", n, file[n])
		if i < len(names)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("}\n")
	if err := writeFileAtomic(filepath.Join(r.Dir, configFile), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("node: write config: %w", err)
	}
	return nil
}

func keyIndex(name string) int {
	return slices.IndexFunc(configKeys, func(k ConfigKey) bool { return k.Name == name })
}
