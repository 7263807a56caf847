// Package repo is a node's directory on disk and its typed settings.
//
// A repo holds the node's ed25519 identity key, its config file
// (config.json), the badger store, and, while a daemon runs, the API's
// address and bearer token. [InitRepo] creates one and [OpenRepo] opens it.
//
// Settings come in layers: [Defaults] (the one place each default is
// written, per profile), the config file, COMMONS_* environment variables,
// then the daemon's --profile flag; [Repo.Settings] resolves them into a
// typed [Settings] and says where each value came from. [ConfigKeys] is the
// table of keys: name, type (that of its Settings field), meaning and range.
//
// Package repo must not import node: node reads its defaults from here and
// turns Settings into its own Config (node.ConfigFromSettings).
package repo
