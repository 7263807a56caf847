package repo

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitRepo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, id, err := InitRepo(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, filepath.Join(dir, keyFile)); m != 0o600 {
		t.Errorf("key mode = %v, want 0600", m)
	}
	key, err := r.Key()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := peer.IDFromPrivateKey(key); err != nil || got != id {
		t.Errorf("key's peer ID = %s, %v; InitRepo said %s", got, err, id)
	}
	if _, err := os.Stat(r.StoreDir()); err != nil {
		t.Errorf("store: %v", err)
	}
	cfg, _, err := r.Settings(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Listen, DefaultListen) || cfg.API != DefaultAPIAddr || cfg.Bootstrap == nil {
		t.Errorf("initial config = %+v", cfg)
	}

	keyBefore, _ := os.ReadFile(filepath.Join(dir, keyFile))
	if _, _, err := InitRepo(dir, nil); !errors.Is(err, ErrRepoExists) || !strings.Contains(err.Error(), dir) {
		t.Errorf("second InitRepo = %v, want ErrRepoExists naming %s", err, dir)
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(dir, keyFile)); string(keyAfter) != string(keyBefore) {
		t.Error("second InitRepo changed the key")
	}
	if _, err := OpenRepo(dir); err != nil {
		t.Errorf("OpenRepo after init: %v", err)
	}
}

func TestOpenRepo(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string) error
	}{
		{"empty dir", func(string) error { return nil }},
		{"missing dir", func(dir string) error { return os.Remove(dir) }},
		{"config but no key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, configFile), []byte("{}"), 0o644)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.setup(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenRepo(dir); !errors.Is(err, ErrNoRepo) || !strings.Contains(err.Error(), "commons init") {
				t.Errorf("OpenRepo = %v, want ErrNoRepo with a hint", err)
			}
		})
	}
}

func TestRepoKeyDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, keyFile)
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Key(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Key = %v, want an error naming %s", err, path)
	}
}

func TestRepoAPIFile(t *testing.T) {
	r := &Repo{Dir: t.TempDir()}
	if _, _, ok := r.API(); ok {
		t.Fatal("API reported a daemon before WriteAPI")
	}
	token := NewToken()
	if len(token) != 64 || token == NewToken() {
		t.Errorf("NewToken = %q: want 64 hex digits, fresh each time", token)
	}
	if err := r.WriteAPI("127.0.0.1:4321", token); err != nil {
		t.Fatal(err)
	}
	addr, got, ok := r.API()
	if !ok || addr != "127.0.0.1:4321" || got != token {
		t.Errorf("API = %q, %q, %v; want 127.0.0.1:4321, %q, true", addr, got, ok, token)
	}
	if m := fileMode(t, filepath.Join(r.Dir, tokenFile)); m != 0o600 {
		t.Errorf("token mode = %v, want 0600", m)
	}
	// A second daemon overwrites both files.
	if err := r.WriteAPI("127.0.0.1:1", "t2"); err != nil {
		t.Fatal(err)
	}
	if addr, got, _ := r.API(); addr != "127.0.0.1:1" || got != "t2" {
		t.Errorf("after rewrite API = %q, %q", addr, got)
	}
	r.RemoveAPI()
	if _, _, ok := r.API(); ok {
		t.Error("API still reported after RemoveAPI")
	}
	entries, _ := os.ReadDir(r.Dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// Beside names the directories that repo compact or repo repair left
// beside the store, with their sizes, and nothing else.
func TestBeside(t *testing.T) {
	r, _, err := InitRepo(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Beside(); len(got) != 0 {
		t.Fatalf("a fresh repo: %v", got)
	}
	left := r.StoreDir() + ".compact"
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, "000001.vlog"), make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := r.Beside(); len(got) != 1 || got[left] != 1000 {
		t.Fatalf("Beside = %v; want %s, 1000 bytes", got, left)
	}
}
