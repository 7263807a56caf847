package repo

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func sourceOf(t *testing.T, list []ConfigSetting, key string) string {
	t.Helper()
	for _, s := range list {
		if s.Key == key {
			return s.Source
		}
	}
	t.Fatalf("no setting %q in %v", key, list)
	return ""
}

func TestSettingsLayers(t *testing.T) {
	r := &Repo{Dir: t.TempDir()}
	s, list, err := r.Settings(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Listen, DefaultListen) || s.API != DefaultAPIAddr || s.Profile != ProfileDefault ||
		!s.MDNS || s.DHT != "auto" || !s.RelayClient || s.RelayService || !s.HolePunching ||
		s.Reachability != "auto" || s.SyncInterval != 30*time.Second || s.ConnLow >= s.ConnHigh {
		t.Errorf("defaults = %+v", s)
	}
	if len(list) != len(configKeys) || sourceOf(t, list, "dht") != "default" {
		t.Errorf("sources = %+v", list)
	}
	for _, k := range list {
		if k.Doc == "" {
			t.Errorf("key %s has no doc", k.Key)
		}
	}

	// The bootstrap profile changes defaults, not what the file says.
	if err := r.SetConfig("relay_service", "false"); err != nil {
		t.Fatal(err)
	}
	s, list, err = r.Settings(nil, ProfileBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	if s.DHT != "server" || s.Reachability != "public" || s.RelayService || s.ConnHigh < 1000 {
		t.Errorf("bootstrap profile = %+v", s)
	}
	if got := sourceOf(t, list, "dht"); got != "profile" {
		t.Errorf("dht source = %s, want profile", got)
	}
	if got := sourceOf(t, list, "relay_service"); got != "config" {
		t.Errorf("relay_service source = %s, want config", got)
	}

	// The environment wins over the file.
	env := envOf(map[string]string{"COMMONS_RELAY_SERVICE": "true", "COMMONS_BOOTSTRAP": "/ip4/7.0.0.2/tcp/4040/p2p/12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu, "})
	s, list, err = r.Settings(env, "")
	if err != nil {
		t.Fatal(err)
	}
	if !s.RelayService || len(s.Bootstrap) != 1 || sourceOf(t, list, "relay_service") != "env" {
		t.Errorf("env overrides = %+v", s)
	}
}

func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		wantErr []string // substrings
	}{
		{"unknown key", `{"api":"127.0.0.1:0","apii":"x"}`, nil, []string{`unknown key "apii"`, configFile}},
		{"bad JSON", `{"api":`, nil, []string{"not a JSON object", configFile}},
		{"wrong type", `{"listen":"/ip4/127.0.0.1/tcp/1"}`, nil, []string{"listen", "JSON array"}},
		{"bad enum", `{"dht":"sometimes"}`, nil, []string{"dht", `"sometimes"`, "auto, client, server, off"}},
		{"bad multiaddr", `{"listen":["tcp/1"]}`, nil, []string{"listen", `"tcp/1"`}},
		{"bootstrap without peer ID", `{"bootstrap":["/ip4/1.2.3.4/tcp/1"]}`, nil, []string{"bootstrap", "/p2p/"}},
		{"bad duration", `{"sync_interval":"often"}`, nil, []string{"sync_interval", `"often"`}},
		{"short duration", `{"sync_interval":"1ms"}`, nil, []string{"sync_interval", "at least 1s"}},
		{"limits crossed", `{"conn_low":50,"conn_high":10}`, nil, []string{"conn_high", "conn_low"}},
		{"bad env", `{}`, map[string]string{"COMMONS_MDNS": "perhaps"}, []string{"COMMONS_MDNS", "mdns", `"perhaps"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Repo{Dir: t.TempDir()}
			if err := os.WriteFile(filepath.Join(r.Dir, configFile), []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := r.Settings(envOf(tt.env), "")
			if err == nil {
				t.Fatal("Settings succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSetConfig(t *testing.T) {
	r := &Repo{Dir: t.TempDir()}
	if err := r.SetConfig("listen", "/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/udp/1/quic-v1"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetConfig("mdns", "false"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(r.Dir, configFile))
	for _, bad := range [][2]string{{"mdns", "maybe"}, {"listen", "nonsense"}, {"nosuch", "1"}, {"conn_low", "-3"}, {"profile", "server"}} {
		err := r.SetConfig(bad[0], bad[1])
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("SetConfig(%q, %q) = %v, want an error naming the key", bad[0], bad[1], err)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(r.Dir, configFile)); string(after) != string(before) {
		t.Errorf("a refused value changed the file:\n%s\nwas\n%s", after, before)
	}
	s, _, err := r.Settings(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.MDNS || len(s.Listen) != 2 || s.Listen[1] != "/ip4/127.0.0.1/udp/1/quic-v1" {
		t.Errorf("after set: %+v", s)
	}
	if err := r.UnsetConfig("mdns"); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := r.Settings(nil, ""); !s.MDNS {
		t.Error("unset mdns did not restore the default")
	}
}

// TestDefaultsValid: every profile's defaults pass their keys' checks.
func TestDefaultsValid(t *testing.T) {
	for _, prof := range []string{ProfileDefault, ProfileBootstrap} {
		t.Run(prof, func(t *testing.T) {
			d := Defaults(prof)
			if d.Profile != prof {
				t.Errorf("Defaults(%q).Profile = %q", prof, d.Profile)
			}
			if d.ConnHigh < d.ConnLow {
				t.Errorf("conn_high %d below conn_low %d", d.ConnHigh, d.ConnLow)
			}
			for _, k := range ConfigKeys() {
				if err := k.validate(k.value(&d)); err != nil {
					t.Errorf("default of %s: %v", k.Name, err)
				}
			}
		})
	}
	// Defaults are fresh values: changing one leaves the next call's alone.
	d := Defaults(ProfileDefault)
	d.Listen[0] = "changed"
	if got := Defaults(ProfileDefault).Listen[0]; got != DefaultListen[0] || DefaultListen[0] == "changed" {
		t.Errorf("Defaults shares its Listen slice: %q", got)
	}
}

// TestDaemonSettings: the settings a daemon records read back as they
// were, each value of its key's type, until it removes them.
func TestDaemonSettings(t *testing.T) {
	r := &Repo{Dir: t.TempDir()}
	if _, ok, err := r.DaemonSettings(); ok || err != nil {
		t.Fatalf("DaemonSettings with none recorded = %v, %v", ok, err)
	}
	_, list, err := r.Settings(envOf(map[string]string{"COMMONS_MDNS": "false"}), ProfileBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	for i := range list {
		if list[i].Key == "log_level" {
			list[i].Value, list[i].Source = "warning", "flag" // as --log-level gives it
		}
	}
	if err := r.WriteDaemonSettings(list); err != nil {
		t.Fatal(err)
	}
	got, ok, err := r.DaemonSettings()
	if !ok || err != nil {
		t.Fatalf("DaemonSettings = %v, %v", ok, err)
	}
	if !reflect.DeepEqual(got, list) {
		t.Errorf("DaemonSettings = %+v\nwant %+v", got, list)
	}
	r.RemoveDaemonSettings()
	if _, ok, err := r.DaemonSettings(); ok || err != nil {
		t.Errorf("DaemonSettings after RemoveDaemonSettings = %v, %v", ok, err)
	}
}
