package repo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// Files in a repo directory.
const (
	keyFile    = "key"         // libp2p-marshalled ed25519 private key, mode 0600
	configFile = "config.json" // RepoConfig
	storeDir   = "store"       // badger
	apiFile    = "api"         // host:port of the running daemon's API
	tokenFile  = "api.token"   // the API's bearer token, mode 0600
	daemonFile = "daemon.json" // the running daemon's settings, []ConfigSetting
)

// ErrNoRepo: the directory holds no initialised repo.
var ErrNoRepo = errors.New("repo: no repo")

// ErrRepoExists: init found a repo already there.
var ErrRepoExists = errors.New("repo: repo already exists")

// Repo is a node's directory: identity key, config, store, and the running
// daemon's API address and token.
type Repo struct {
	Dir string
}

// InitRepo creates a repo in dir: a new ed25519 key, a config file with
// the default listen, API and bootstrap settings, and an empty store. It
// refuses to touch an existing repo (ErrRepoExists).
func InitRepo(dir string, logger *slog.Logger) (*Repo, peer.ID, error) {
	r := &Repo{Dir: dir}
	if r.exists() {
		return nil, "", fmt.Errorf("%w at %s: refusing to overwrite it", ErrRepoExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("repo: create directory: %w", err)
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("repo: generate key: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("repo: encode key: %w", err)
	}
	if err := r.writeInitialConfig(); err != nil {
		return nil, "", err
	}
	st, err := badgerstore.Open(r.StoreDir(), logger)
	if err != nil {
		return nil, "", fmt.Errorf("repo: create store: %w", err)
	}
	if err := st.Close(); err != nil {
		return nil, "", fmt.Errorf("repo: create store: %w", err)
	}
	// The key goes last: its presence marks a complete repo.
	if err := writeFileAtomic(filepath.Join(dir, keyFile), b, 0o600); err != nil {
		return nil, "", fmt.Errorf("repo: write key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("repo: peer ID of the new key: %w", err)
	}
	return r, id, nil
}

func (r *Repo) exists() bool {
	_, err := os.Stat(filepath.Join(r.Dir, keyFile))
	return err == nil
}

// OpenRepo opens an initialised repo; ErrNoRepo when dir holds none.
func OpenRepo(dir string) (*Repo, error) {
	r := &Repo{Dir: dir}
	if !r.exists() {
		return nil, fmt.Errorf("%w at %s (create one with: commons init --repo %s)", ErrNoRepo, dir, dir)
	}
	return r, nil
}

// StoreDir is where the badger store lives.
func (r *Repo) StoreDir() string { return filepath.Join(r.Dir, storeDir) }

// Key reads the node's identity key.
func (r *Repo) Key() (crypto.PrivKey, error) {
	b, err := os.ReadFile(filepath.Join(r.Dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("repo: read key: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("repo: key file %s is damaged: %w", filepath.Join(r.Dir, keyFile), err)
	}
	return k, nil
}

// OpenStore opens the repo's badger store. Its errors name the store's
// directory and wrap badgerstore's (badgerstore.ErrLocked while another
// process holds it).
func (r *Repo) OpenStore(logger *slog.Logger) (store.Store, error) {
	return badgerstore.Open(r.StoreDir(), logger)
}

// Beside returns the directories beside the repo's store that repo
// compact or repo repair left (a copy cut short, the old store kept
// aside), with the bytes each takes.
func (r *Repo) Beside() map[string]int64 {
	dirs, _ := filepath.Glob(r.StoreDir() + ".*")
	out := map[string]int64{}
	for _, d := range dirs {
		out[d], _ = badgerstore.DirSize(d)
	}
	return out
}

// NewToken returns a fresh random API token.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Token returns the API token a daemon of this repo used last, if one is
// recorded and well formed (as NewToken makes them): a daemon keeps it
// across restarts, so that a client that read it once keeps working.
func (r *Repo) Token() (string, bool) {
	raw, err := os.ReadFile(filepath.Join(r.Dir, tokenFile))
	if err != nil {
		return "", false
	}
	t := strings.TrimSpace(string(raw))
	if b, err := hex.DecodeString(t); err != nil || len(b) != 32 {
		return "", false
	}
	return t, true
}

// WriteAPI records the running daemon's API address and token.
func (r *Repo) WriteAPI(addr, token string) error {
	if err := writeFileAtomic(filepath.Join(r.Dir, tokenFile), []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("repo: write API token: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(r.Dir, apiFile), []byte(addr+"\n"), 0o644); err != nil {
		return fmt.Errorf("repo: write API address: %w", err)
	}
	return nil
}

// RemoveAPI removes the API address file when the daemon stops.
func (r *Repo) RemoveAPI() { _ = os.Remove(filepath.Join(r.Dir, apiFile)) }

// API returns the recorded API address and token; ok is false when no
// daemon has recorded one.
func (r *Repo) API() (addr, token string, ok bool) {
	a, err := os.ReadFile(filepath.Join(r.Dir, apiFile))
	if err != nil {
		return "", "", false
	}
	t, err := os.ReadFile(filepath.Join(r.Dir, tokenFile))
	if err != nil {
		return "", "", false
	}
	return strings.TrimSpace(string(a)), strings.TrimSpace(string(t)), true
}

// writeFileAtomic writes data to path through a synced temporary file in
// the same directory, so that a reader sees the old content or the new,
// never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
