package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"time"
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
// variables. Each field is the setting of ConfigKeys named in its
// comment, which says what it means.
type Settings struct {
	Listen       []string      // listen
	Announce     []string      // announce
	API          string        // api
	APIHosts     []string      // api_hosts
	Bootstrap    []string      // bootstrap
	Profile      string        // profile
	MDNS         bool          // mdns
	DHT          string        // dht: auto, client, server, off
	AutoNAT      bool          // autonat
	RelayClient  bool          // relay_client
	RelayService bool          // relay_service
	HolePunching bool          // hole_punching
	Reachability string        // reachability: auto, public, private
	ConnLow      int           // conn_low
	ConnHigh     int           // conn_high
	SyncInterval time.Duration // sync_interval
	LogLevel     string        // log_level
	MemoryLimit  int           // memory_limit (MiB)
	DiskMargin   int           // disk_margin (MiB)
}

// DefaultListen are the addresses a daemon listens on when none are given:
// TCP and QUIC on port 4040, all interfaces.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/4040", "/ip4/0.0.0.0/udp/4040/quic-v1"}

// DefaultAPIAddr is the API address a new repo gets: loopback, a free port.
const DefaultAPIAddr = "127.0.0.1:0"

// Defaults returns the settings under profile before the config file and
// the environment have their say; an unknown profile gets the default
// one's. It is the one place each default is written: node.Config and
// node.NetworkConfig take theirs from Defaults(ProfileDefault).
func Defaults(profile string) Settings {
	s := Settings{
		Listen:       slices.Clone(DefaultListen),
		Announce:     []string{},
		API:          DefaultAPIAddr,
		APIHosts:     []string{},
		Bootstrap:    []string{},
		Profile:      ProfileDefault,
		MDNS:         true,
		DHT:          "auto",
		AutoNAT:      true,
		RelayClient:  true,
		RelayService: false,
		HolePunching: true,
		Reachability: "auto",
		ConnLow:      100,
		ConnHigh:     400,
		SyncInterval: 30 * time.Second,
		LogLevel:     "info",
		MemoryLimit:  256,
		DiskMargin:   256,
	}
	if profile == ProfileBootstrap {
		s.Profile = ProfileBootstrap
		s.DHT = "server"
		s.RelayClient = false
		s.RelayService = true
		s.Reachability = "public"
		s.ConnLow, s.ConnHigh = 800, 2000
		s.MemoryLimit = 1024
	}
	return s
}

// ConfigSetting is one setting's effective value and where it came from.
type ConfigSetting struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"` // default, profile, config, env, flag
	Doc    string `json:"doc"`
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
		return nil, fmt.Errorf("repo: read config: %w", err)
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("repo: config %s is not a JSON object: %w", path, err)
	}
	for name := range m {
		if _, err := lookupKey(name); err != nil {
			return nil, fmt.Errorf("repo: config %s: %w", path, err)
		}
	}
	return m, nil
}

// Settings returns the repo's effective settings and where each came from:
// defaults, the profile's defaults, the config file, then env (a lookup of
// environment variables; nil for none). profile, when not empty, overrides
// the profile from the file and env (the daemon's --profile flag).
func (r *Repo) Settings(env func(string) (string, bool), profile string) (Settings, []ConfigSetting, error) {
	given, err := r.givenSettings(env, profile)
	if err != nil {
		return Settings{}, nil, err
	}
	prof := ProfileDefault
	if p, ok := given["profile"]; ok {
		prof = p.Value.(string)
	}
	s := Defaults(prof)
	list := make([]ConfigSetting, 0, len(configKeys))
	for _, k := range configKeys {
		g, ok := given[k.Name]
		if ok {
			k.set(&s, g.Value)
		} else {
			g = defaultSetting(k, prof)
		}
		g.Key, g.Doc = k.Name, k.Doc
		list = append(list, g)
	}
	if s.ConnHigh < s.ConnLow {
		return Settings{}, nil, fmt.Errorf("repo: config: conn_high (%d) is below conn_low (%d)", s.ConnHigh, s.ConnLow)
	}
	return s, list, nil
}

// givenSettings are the values the config file, env and the profile flag
// give, by key, each with its source; later layers win.
func (r *Repo) givenSettings(env func(string) (string, bool), profile string) (map[string]ConfigSetting, error) {
	file, err := r.configFileValues()
	if err != nil {
		return nil, err
	}
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	given := make(map[string]ConfigSetting, len(configKeys))
	for _, k := range configKeys {
		if raw, ok := file[k.Name]; ok {
			v, err := k.parseJSON(raw)
			if err != nil {
				return nil, fmt.Errorf("repo: %s: %w", filepath.Join(r.Dir, configFile), err)
			}
			given[k.Name] = ConfigSetting{Value: v, Source: "config"}
		}
		if s, ok := env(k.EnvName()); ok && s != "" { // empty: unset
			v, err := k.parseText(s)
			if err != nil {
				return nil, fmt.Errorf("repo: $%s: %w", k.EnvName(), err)
			}
			given[k.Name] = ConfigSetting{Value: v, Source: "env"}
		}
	}
	if profile != "" {
		k, _ := lookupKey("profile")
		if err := k.validate(profile); err != nil {
			return nil, fmt.Errorf("repo: --profile: %w", err)
		}
		given["profile"] = ConfigSetting{Value: profile, Source: "flag"}
	}
	return given, nil
}

// defaultSetting is k's default under profile: its source is "profile"
// where the profile changes it, else "default".
func defaultSetting(k ConfigKey, profile string) ConfigSetting {
	d, base := Defaults(profile), Defaults(ProfileDefault)
	v := k.value(&d)
	if profile != ProfileDefault && !reflect.DeepEqual(v, k.value(&base)) {
		return ConfigSetting{Value: v, Source: "profile"}
	}
	return ConfigSetting{Value: v, Source: "default"}
}

// WriteDaemonSettings records the settings a daemon runs with, its flags
// included, for commons config show while it runs. The daemon writes them
// before its API address and removes them (RemoveDaemonSettings) when it
// stops.
func (r *Repo) WriteDaemonSettings(list []ConfigSetting) error {
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("repo: encode the daemon's settings: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(r.Dir, daemonFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("repo: write the daemon's settings: %w", err)
	}
	return nil
}

// RemoveDaemonSettings removes what WriteDaemonSettings wrote.
func (r *Repo) RemoveDaemonSettings() { _ = os.Remove(filepath.Join(r.Dir, daemonFile)) }

// DaemonSettings returns the settings the daemon recorded with
// WriteDaemonSettings, each value of its key's type; ok is false when
// there are none. A daemon that died may have left them: ask whether one
// answers on the API before taking them for its settings.
func (r *Repo) DaemonSettings() (list []ConfigSetting, ok bool, err error) {
	path := filepath.Join(r.Dir, daemonFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("repo: read the daemon's settings: %w", err)
	}
	var raw []struct {
		ConfigSetting
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, false, fmt.Errorf("repo: the daemon's settings %s: %w", path, err)
	}
	for _, s := range raw {
		k, err := lookupKey(s.Key)
		if err != nil {
			return nil, false, fmt.Errorf("repo: the daemon's settings %s: %w", path, err)
		}
		v, err := k.decodeJSON(s.Value) // as the daemon took it (--log-level warning)
		if err != nil {
			return nil, false, fmt.Errorf("repo: the daemon's settings %s: %w", path, err)
		}
		list = append(list, ConfigSetting{Key: s.Key, Value: v, Source: s.Source, Doc: k.Doc})
	}
	return list, true, nil
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
		return fmt.Errorf("repo: encode %s: %w", k.Name, err)
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

// writeInitialConfig writes a new repo's config file: the default listen,
// API and bootstrap settings, spelt out for the user to edit.
func (r *Repo) writeInitialConfig() error {
	d := Defaults(ProfileDefault)
	file := map[string]json.RawMessage{}
	for _, name := range []string{"listen", "api", "bootstrap"} {
		k, _ := lookupKey(name)
		raw, err := json.Marshal(k.value(&d))
		if err != nil {
			return fmt.Errorf("repo: encode %s: %w", name, err)
		}
		file[name] = raw
	}
	return r.writeConfigValues(file)
}

// writeConfigValues writes the config file: one key a line, in the order
// of ConfigKeys.
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
		return fmt.Errorf("repo: write config: %w", err)
	}
	return nil
}
