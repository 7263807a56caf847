// Package gen makes synthetic commons: valid, realistic record sets
// (manifests that rotate maintainers, contributions from many authors,
// reviews reaching quorum or not), the same bytes for the same options, to
// import into nodes, load a benchmark or try the explorer. The commons
// binary offers it as "commons testnet gen".
//
// gen is linked into the commons binary, so it must not import testing
// (directly or through another package) nor any package of testnet that
// does.
package gen
