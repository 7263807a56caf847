package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

// -update rewrites testdata/records/*.json and testdata/malformed.json from
// the generators below. It never touches testdata/ed25519-edge-cases.json,
// which is fixed published data.
var update = flag.Bool("update", false, "rewrite the record and malformed-record test vectors")

// recordVector is one valid record, as stored in testdata/records/NAME.json.
type recordVector struct {
	Name         string         `json:"name"`
	Description  string         `json:"description"`
	Seed         string         `json:"seed"`
	PublicKey    string         `json:"public_key"`
	PeerID       string         `json:"peer_id"`
	Cosigners    []vectorSigner `json:"cosigners,omitempty"`
	SigningBytes string         `json:"signing_bytes"`
	Record       string         `json:"record"`
	CID          string         `json:"cid"`
	Expected     string         `json:"expected"`
	// Work is the proof of work the record's commons asks (§7.4): the
	// SHA-256 of the signing bytes begins with that many zero bits.
	Work int `json:"work,omitempty"`
}

type vectorSigner struct {
	Seed      string `json:"seed"`
	PublicKey string `json:"public_key"`
}

// malformedVector is one invalid record and the error Validate must return.
type malformedVector struct {
	Name   string `json:"name"`
	Record string `json:"record"`
	Error  string `json:"error"` // name of the sentinel, e.g. "ErrNonCanonical"
	Field  string `json:"field"` // FieldError.Field
}

// edgeVector is one ed25519 signature edge case.
type edgeVector struct {
	Name      string `json:"name"`
	Source    string `json:"source"`
	PublicKey string `json:"public_key"`
	Message   string `json:"message"`
	Signature string `json:"signature"`
	ZIP215    bool   `json:"zip215"` // the pinned rule accepts it
	Stdlib    bool   `json:"stdlib"` // Go's crypto/ed25519 accepts it
}

var sentinels = map[string]error{
	"ErrTooLarge":     ErrTooLarge,
	"ErrMalformed":    ErrMalformed,
	"ErrNonCanonical": ErrNonCanonical,
	"ErrUnknownType":  ErrUnknownType,
	"ErrMissing":      ErrMissing,
	"ErrInvalid":      ErrInvalid,
	"ErrBadSignature": ErrBadSignature,
	"ErrFutureTime":   ErrFutureTime,
}

// Fixed seeds of the vector keys.
var (
	seedAssoc1      = bytes.Repeat([]byte{0x01}, 32)
	seedAssoc2      = bytes.Repeat([]byte{0x02}, 32)
	seedMaintainer  = bytes.Repeat([]byte{0x03}, 32)
	seedContributor = bytes.Repeat([]byte{0x04}, 32)
	seedSponsor     = bytes.Repeat([]byte{0x05}, 32)
	// seedSuccessor is the key the contributor rotates to (§5.13).
	seedSuccessor = bytes.Repeat([]byte{0x08}, 32)
)

// vectorTime is the fixed base time of the vectors: 2023-11-14T22:13:20Z.
const vectorTime = 1_700_000_000_000

type vectorSet struct {
	genesis, update, contribution, review *Block
	records                               []recordVector
}

func mustBlock(r *Record, key PrivateKey, cosigners ...PrivateKey) (*Block, error) {
	if err := Sign(r, key); err != nil {
		return nil, err
	}
	for _, c := range cosigners {
		if err := Cosign(r, c); err != nil {
			return nil, err
		}
	}
	return NewBlock(r)
}

// buildVectors creates the valid record vectors from the fixed seeds.
func buildVectors() (*vectorSet, error) {
	a1, a2 := NewPrivateKeyFromSeed(seedAssoc1), NewPrivateKeyFromSeed(seedAssoc2)
	m, c := NewPrivateKeyFromSeed(seedMaintainer), NewPrivateKeyFromSeed(seedContributor)
	sponsor := NewPrivateKeyFromSeed(seedSponsor).Public()
	vs := &vectorSet{}
	var err error
	vs.genesis, err = mustBlock(&Record{Time: HLCFromMillis(vectorTime, 0), Body: &Manifest{
		Name: "Example commons", Licence: "CC-BY-SA-4.0",
		Association: []PublicKey{a1.Public()}, Threshold: 1,
		Maintainers: []PublicKey{m.Public()}, Quorum: 1, RejectQuorum: 1,
	}}, a1)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	commons := vs.genesis.CID
	assoc := []PublicKey{a1.Public(), a2.Public()}
	slices.SortFunc(assoc, PublicKey.Compare)
	licenceText := Link{BlobCID([]byte("Creative Commons Attribution-ShareAlike 4.0 International\n"))}
	vs.update, err = mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+60_000, 0), Body: &Manifest{
		Name: "Example commons", Licence: "CC-BY-SA-4.0 OR (MIT AND Apache-2.0 WITH LLVM-exception)",
		LicenceText: &licenceText, Association: assoc, Threshold: 2,
		Maintainers: []PublicKey{m.Public()}, Quorum: 1, RejectQuorum: 1,
		Revoked:   []PublicKey{sponsor},
		Bootstrap: []string{"/dns4/boot.example.org/tcp/4001/p2p/" + a1.Public().String()},
		Policy:    &Policy{MaxBlobBytes: 16 << 20},
		Prev:      []Link{{commons}}, Version: 1,
	}}, a1, a2)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	vs.contribution, err = mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+120_000, 3), Body: &Contribution{
		Title: "Add a French translation", Summary: "Translates the guide.\nReviewed by a native speaker.",
		Kind: "translation", Licence: Link{vs.update.CID}, Provenance: ProvenancePaid, Sponsor: &sponsor,
		Payload: []PayloadRef{
			{CID: Link{BlobCID([]byte("Bonjour, le monde.\n"))}, Name: "guide.fr.md", Size: 19},
			{CID: Link{BlobCID([]byte{})}, Size: 0},
		},
	}}, c)
	if err != nil {
		return nil, fmt.Errorf("contribution: %w", err)
	}
	vs.review, err = mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+180_000, 0), Body: &Review{
		Target: Link{vs.contribution.CID}, Decision: DecisionAccept, Rationale: "Merci !", Under: Link{vs.update.CID},
	}}, m)
	if err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	// A commons that asks 12 bits of work of its records, and a
	// contribution that carries them (§7.4).
	workGenesis, err := mustBlock(&Record{Time: HLCFromMillis(vectorTime, 0), Body: &Manifest{
		Name: "Example commons with proof of work", Licence: "CC0-1.0",
		Association: []PublicKey{a1.Public()}, Threshold: 1, Policy: &Policy{Work: 12},
	}}, a1)
	if err != nil {
		return nil, fmt.Errorf("genesis with work: %w", err)
	}
	worked := &Record{Commons: workGenesis.CID, Author: c.Public(), Time: HLCFromMillis(vectorTime+60_000, 0), Body: &Contribution{
		Title: "A record that carries its work", Licence: Link{workGenesis.CID}, Provenance: ProvenanceVolunteer,
	}}
	if ok, err := SolveWork(worked, 12, 1<<24); !ok || err != nil {
		return nil, fmt.Errorf("contribution with work: %v, %w", ok, err)
	}
	workContribution, err := mustBlock(worked, c)
	if err != nil {
		return nil, fmt.Errorf("contribution with work: %w", err)
	}
	// A commons whose genesis lets its manifests ban keys (§7.5), and an
	// update that bans a key flooding it (§12.3).
	bansGenesis, err := mustBlock(&Record{Time: HLCFromMillis(vectorTime, 0), Body: &Manifest{
		Name: "Example commons that can ban keys", Licence: "CC0-1.0",
		Association: []PublicKey{a1.Public()}, Threshold: 1,
		Maintainers: []PublicKey{m.Public()}, Quorum: 1, RejectQuorum: 1,
		Policy: &Policy{Bans: true},
	}}, a1)
	if err != nil {
		return nil, fmt.Errorf("genesis allowing bans: %w", err)
	}
	flooder := NewPrivateKeyFromSeed(bytes.Repeat([]byte{0x06}, 32)).Public()
	ban, err := mustBlock(&Record{Commons: bansGenesis.CID, Time: HLCFromMillis(vectorTime+60_000, 0), Body: &Manifest{
		Name: "Example commons that can ban keys", Licence: "CC0-1.0",
		Association: []PublicKey{a1.Public()}, Threshold: 1,
		Maintainers: []PublicKey{m.Public()}, Quorum: 1, RejectQuorum: 1,
		Banned: []PublicKey{flooder},
		Prev:   []Link{{bansGenesis.CID}}, Version: 1,
	}}, a1)
	if err != nil {
		return nil, fmt.Errorf("ban: %w", err)
	}
	// A commons whose genesis carries the entrepreneurial coalition's
	// records (§7.6): a paid contribution naming the sponsor, the
	// sponsor's profile declaring what it builds on the commons, and its
	// sponsorship of that contribution (§5.5, §5.6).
	sponsorKey := NewPrivateKeyFromSeed(seedSponsor)
	coalitionGenesis, err := mustBlock(&Record{Time: HLCFromMillis(vectorTime, 0), Body: &Manifest{
		Name: "Example commons with an entrepreneurial coalition", Licence: "CC-BY-SA-4.0",
		Association: []PublicKey{a1.Public()}, Threshold: 1,
		Maintainers: []PublicKey{m.Public()}, Quorum: 1, RejectQuorum: 1,
		Policy: &Policy{Coalition: 1},
	}}, a1)
	if err != nil {
		return nil, fmt.Errorf("genesis with the coalition: %w", err)
	}
	sponsored, err := mustBlock(&Record{Commons: coalitionGenesis.CID, Time: HLCFromMillis(vectorTime+60_000, 0), Body: &Contribution{
		Title: "Add a Spanish translation", Kind: "translation",
		Licence: Link{coalitionGenesis.CID}, Provenance: ProvenancePaid, Sponsor: &sponsor,
		Payload: []PayloadRef{{CID: Link{BlobCID([]byte("Hola, mundo.\n"))}, Name: "guide.es.md", Size: 13}},
	}}, c)
	if err != nil {
		return nil, fmt.Errorf("sponsored contribution: %w", err)
	}
	profile, err := mustBlock(&Record{Commons: coalitionGenesis.CID, Time: HLCFromMillis(vectorTime+120_000, 0), Body: &Profile{
		Name: "Example Translations Ltd", About: "We translate the guide\nand sell printed copies.",
		Uses: []Use{
			{Kind: "product", Name: "Printed guide", URL: "https://translations.example.com/guide"},
			{Kind: "service", Name: "Translation on demand"},
		},
	}}, sponsorKey)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	sponsorship, err := mustBlock(&Record{Commons: coalitionGenesis.CID, Time: HLCFromMillis(vectorTime+180_000, 0), Body: &Sponsorship{
		Target: Link{sponsored.CID}, Note: "Paid under contract 2023-17.",
	}}, sponsorKey)
	if err != nil {
		return nil, fmt.Errorf("sponsorship: %w", err)
	}
	// The sponsor pledges money to the association's key 1, which
	// acknowledges half of it, co-signed by key 2, under the genesis
	// (§5.7, §5.8); and pledges a node it runs for the commons.
	beneficiary := a1.Public()
	pledge, err := mustBlock(&Record{Commons: coalitionGenesis.CID, Time: HLCFromMillis(vectorTime+240_000, 0), Body: &Pledge{
		Kind: PledgeMoney, Amount: 50_000, Currency: "EUR",
		From: vectorTime, Until: vectorTime + 365*24*3600*1000,
		Beneficiary: &beneficiary, Note: "Ten per cent of the printed guide's sales, in cents.",
		Under: Link{coalitionGenesis.CID},
	}}, sponsorKey)
	if err != nil {
		return nil, fmt.Errorf("pledge: %w", err)
	}
	node := NewPrivateKeyFromSeed(bytes.Repeat([]byte{0x07}, 32)).Public()
	infraPledge, err := mustBlock(&Record{Commons: coalitionGenesis.CID, Time: HLCFromMillis(vectorTime+300_000, 0), Body: &Pledge{
		Kind: PledgeInfrastructure, Peer: node.String(),
		From: vectorTime, Until: vectorTime + 180*24*3600*1000,
		Note:  "A node that keeps the commons' records, for six months.",
		Under: Link{coalitionGenesis.CID},
	}}, sponsorKey)
	if err != nil {
		return nil, fmt.Errorf("infrastructure pledge: %w", err)
	}
	ack, err := mustBlock(&Record{Commons: coalitionGenesis.CID, Time: HLCFromMillis(vectorTime+360_000, 0), Body: &Acknowledgement{
		Pledge: Link{pledge.CID}, Amount: 25_000, Under: &Link{coalitionGenesis.CID}, Note: "First half received.",
	}}, a1, a2)
	if err != nil {
		return nil, fmt.Errorf("acknowledgement: %w", err)
	}
	assocRecords, err := buildAssociationVectors(a1, a2, m, c, sponsorKey)
	if err != nil {
		return nil, err
	}
	withWork := recordVec("contribution-work", "contribution carrying the 12 bits of work its commons asks: SHA-256 of the signing bytes begins with 12 zero bits", seedContributor, workContribution)
	withWork.Work = 12
	vs.records = []recordVector{
		recordVec("genesis-work", "genesis manifest asking 12 bits of proof of work of every other record (policy.work)", seedAssoc1, workGenesis),
		withWork,
		recordVec("genesis", "genesis manifest: one association key, one maintainer", seedAssoc1, vs.genesis),
		recordVec("manifest-update", "manifest update, version 1, signed by association key 1 and co-signed by key 2", seedAssoc1, vs.update, seedAssoc2),
		recordVec("contribution", "paid contribution with sponsor and two payload blobs, under the update", seedContributor, vs.contribution),
		recordVec("review", "maintainer accepts the contribution under the update", seedMaintainer, vs.review),
		recordVec("genesis-bans", "genesis manifest letting the commons' manifests ban keys (policy.bans)", seedAssoc1, bansGenesis),
		recordVec("manifest-ban", "manifest update of that commons banning a key: its contributions and reviews are inert while a head bans it", seedAssoc1, ban),
		recordVec("genesis-coalition", "genesis manifest letting the commons carry the entrepreneurial coalition's records, profiles and sponsorships (policy.coalition 1)", seedAssoc1, coalitionGenesis),
		recordVec("contribution-sponsored", "paid contribution of that commons naming the sponsor key as its sponsor", seedContributor, sponsored),
		recordVec("profile", "profile of the sponsor key in that commons: name, about and two use declarations, one with a URL", seedSponsor, profile),
		recordVec("sponsorship", "sponsorship by the sponsor key of that paid contribution, with a note: links is [target]", seedSponsor, sponsorship),
		recordVec("pledge", "money pledge by the sponsor key in that commons: 50000 cents of EUR over a year, association key 1 its beneficiary, under that genesis: links is [under]", seedSponsor, pledge),
		recordVec("pledge-infrastructure", "infrastructure pledge by the sponsor key in that commons: the node whose peer ID is peer, for six months, under that genesis; no amount, no currency; links is [under]", seedSponsor, infraPledge),
		recordVec("acknowledgement", "acknowledgement of 25000 cents of the money pledge, signed by association key 1 (its beneficiary) and co-signed by key 2, under that genesis: links is [pledge, under] sorted", seedAssoc1, ack, seedAssoc2),
	}
	vs.records = append(vs.records, assocRecords...)
	return vs, nil
}

// associationRoot is the fixed 32 bytes the release certificate vector
// gives as its state root (§5.12): the protocol package computes no state,
// so it stands for one.
var associationRoot = sha256.Sum256([]byte("Example commons with a for-benefit association: state root"))

// buildAssociationVectors creates the vectors of a commons whose genesis
// carries the for-benefit association's records (§7.7), with keys 1 and 2
// as its association and a threshold of 2: a contribution; the
// association's certificates of the maintainer's role and of a release
// holding that contribution; a dispute about the contribution by the
// sponsor key, the contributor's statement, and the association's
// resolution upholding it; and the contributor's rotation to the 08×32 key
// (§5.9–§5.13). Every act of the association is signed by key 1 and
// co-signed by key 2, the genesis too (§12.2: its threshold counts).
func buildAssociationVectors(a1, a2, m, c, sponsorKey PrivateKey) ([]recordVector, error) {
	assoc := []PublicKey{a1.Public(), a2.Public()}
	slices.SortFunc(assoc, PublicKey.Compare)
	genesis, err := mustBlock(&Record{Time: HLCFromMillis(vectorTime, 0), Body: &Manifest{
		Name: "Example commons with a for-benefit association", Licence: "CC-BY-SA-4.0",
		Association: assoc, Threshold: 2,
		Maintainers: []PublicKey{m.Public()}, Quorum: 1, RejectQuorum: 1,
		Policy: &Policy{Association: 1},
	}}, a1, a2)
	if err != nil {
		return nil, fmt.Errorf("genesis with the association: %w", err)
	}
	commons, under := genesis.CID, Link{genesis.CID}
	contribution, err := mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+60_000, 0), Body: &Contribution{
		Title: "Add a German translation", Kind: "translation",
		Licence: under, Provenance: ProvenanceVolunteer,
		Payload: []PayloadRef{{CID: Link{BlobCID([]byte("Hallo, Welt.\n"))}, Name: "guide.de.md", Size: 13}},
	}}, c)
	if err != nil {
		return nil, fmt.Errorf("contribution of the association's commons: %w", err)
	}
	expires := uint64(vectorTime + 365*24*3600*1000)
	maintainer := m.Public()
	certificate, err := mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+120_000, 0), Body: &Certificate{
		Participant: &maintainer, Role: "maintainer", Expires: expires,
		Note: "Maintains the guide and its translations.", Under: under,
	}}, a1, a2)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	release, err := mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+180_000, 0), Body: &Certificate{
		Release: &Release{Name: "2023.11", Root: associationRoot[:], Contributions: []Link{{contribution.CID}}},
		Expires: expires, Under: under,
	}}, a1, a2)
	if err != nil {
		return nil, fmt.Errorf("release certificate: %w", err)
	}
	subject := Link{contribution.CID}
	dispute, err := mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+240_000, 0), Body: &Dispute{
		Subject: &subject,
		Reason:  "The German guide copies a translation\nwe published under a proprietary licence.",
		Evidence: []string{
			"https://translations.example.com/guide.de",
			"http://archive.example.org/2023/guide.de.html",
		},
		Under: under,
	}}, sponsorKey)
	if err != nil {
		return nil, fmt.Errorf("dispute: %w", err)
	}
	statement, err := mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+300_000, 0), Body: &Statement{
		Dispute:  Link{dispute.CID},
		Text:     "I translated it from the English guide; my drafts are public.",
		Evidence: []string{"https://example.org/drafts/guide.de"},
	}}, c)
	if err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	resolution, err := mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+360_000, 0), Body: &Resolution{
		Dispute: Link{dispute.CID}, Outcome: OutcomeUphold, Effect: EffectWithdraw,
		Reason: "The drafts postdate the published translation, which the contribution reproduces.",
		Under:  under,
	}}, a1, a2)
	if err != nil {
		return nil, fmt.Errorf("resolution: %w", err)
	}
	successor := NewPrivateKeyFromSeed(seedSuccessor)
	rotation, err := mustBlock(&Record{Commons: commons, Time: HLCFromMillis(vectorTime+420_000, 0), Body: &Rotation{
		Successor: successor.Public(),
	}}, c, successor)
	if err != nil {
		return nil, fmt.Errorf("rotation: %w", err)
	}
	return []recordVector{
		recordVec("genesis-association", "genesis manifest letting the commons carry the association's records, disputes, statements, resolutions, certificates and rotations (policy.association 1); association keys 1 and 2, threshold 2, so key 2 co-signs it", seedAssoc1, genesis, seedAssoc2),
		recordVec("contribution-association", "volunteer contribution of that commons by the contributor key, under its genesis: the subject of the dispute and the contribution of the release", seedContributor, contribution),
		recordVec("certificate", "certificate of the maintainer key's role (maintainer) until a year after the genesis, with a note, signed by association key 1 and co-signed by key 2 under that genesis: links is [under]", seedAssoc1, certificate, seedAssoc2),
		recordVec("certificate-release", "certificate of release 2023.11 holding that contribution, at a fixed 32-byte root standing for a state root, signed by association key 1 and co-signed by key 2 under that genesis: links is [under, the contribution] sorted", seedAssoc1, release, seedAssoc2),
		recordVec("dispute", "dispute by the sponsor key about that contribution (its subject), with two evidence URLs, under that genesis: links is [under, subject] sorted", seedSponsor, dispute),
		recordVec("statement", "statement by the contributor key in that dispute, with one evidence URL: links is [dispute]", seedContributor, statement),
		recordVec("resolution", "resolution upholding that dispute with the effect withdraw, signed by association key 1 and co-signed by key 2 under that genesis: links is [dispute, under] sorted", seedAssoc1, resolution, seedAssoc2),
		recordVec("rotation", "rotation of the contributor key to the 08×32 key, its successor, which co-signs it: no links", seedContributor, rotation, seedSuccessor),
	}, nil
}

func recordVec(name, desc string, seed []byte, b *Block, cosigners ...[]byte) recordVector {
	k := NewPrivateKeyFromSeed(seed).Public()
	v := recordVector{
		Name: name, Description: desc, Seed: hex.EncodeToString(seed), PublicKey: k.Hex(), PeerID: k.String(),
		SigningBytes: hex.EncodeToString(b.SigningBytes()), Record: hex.EncodeToString(b.Raw),
		CID: b.CID.String(), Expected: "valid",
	}
	for _, s := range cosigners {
		v.Cosigners = append(v.Cosigners, vectorSigner{hex.EncodeToString(s), NewPrivateKeyFromSeed(s).Public().Hex()})
	}
	return v
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectorsGolden checks that the generators still produce the stored
// vectors byte for byte, or rewrites them with -update.
func TestVectorsGolden(t *testing.T) {
	vs, err := buildVectors()
	if err != nil {
		t.Fatal(err)
	}
	mal, err := buildMalformed(vs)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		for _, v := range vs.records {
			writeJSON(t, filepath.Join("testdata", "records", v.Name+".json"), v)
		}
		writeJSON(t, filepath.Join("testdata", "malformed.json"), mal)
		return
	}
	for _, v := range vs.records {
		var stored recordVector
		readJSON(t, filepath.Join("testdata", "records", v.Name+".json"), &stored)
		if stored.Record != v.Record || stored.SigningBytes != v.SigningBytes || stored.CID != v.CID {
			t.Errorf("%s: generator output differs from testdata (encoding changed?); run with -update only if the change is intended", v.Name)
		}
	}
	var stored []malformedVector
	readJSON(t, filepath.Join("testdata", "malformed.json"), &stored)
	if !slices.Equal(stored, mal) {
		t.Errorf("malformed.json differs from the generator; run with -update only if the change is intended")
	}
}

// TestRecordVectors checks every stored valid record vector on its own
// terms, without the generator: keys from seeds, CID, signing bytes,
// Validate, and that the record re-encodes to the same bytes.
func TestRecordVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no record vectors: %v", err)
	}
	for _, f := range files {
		var v recordVector
		readJSON(t, f, &v)
		t.Run(v.Name, func(t *testing.T) {
			if got := NewPrivateKeyFromSeed(unhex(t, v.Seed)).Public().Hex(); got != v.PublicKey {
				t.Fatalf("public key from seed = %s, want %s", got, v.PublicKey)
			}
			raw := unhex(t, v.Record)
			b, err := Validate(raw)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if b.CID.String() != v.CID || RecordCID(raw).String() != v.CID {
				t.Errorf("CID = %s, want %s", b.CID, v.CID)
			}
			if hex.EncodeToString(b.SigningBytes()) != v.SigningBytes {
				t.Errorf("signing bytes differ")
			}
			if sum := sha256.Sum256(unhex(t, v.SigningBytes)); zeroBits(sum) < v.Work || b.Work() < v.Work {
				t.Errorf("work: the digest %x carries %d zero bits, Work says %d; want %d", sum, zeroBits(sum), b.Work(), v.Work)
			}
			if b.Record.Author.Hex() != v.PublicKey || b.Record.Author.String() != v.PeerID {
				t.Errorf("author = %s, want %s", b.Record.Author.Hex(), v.PublicKey)
			}
			if len(b.Record.Cosigs) != len(v.Cosigners) {
				t.Fatalf("%d cosigs, want %d", len(b.Record.Cosigs), len(v.Cosigners))
			}
			for i, c := range v.Cosigners {
				if b.Record.Cosigs[i].Key.Hex() != c.PublicKey {
					t.Errorf("cosigs[%d].key = %s, want %s", i, b.Record.Cosigs[i].Key.Hex(), c.PublicKey)
				}
			}
			again, c, err := Encode(b.Record)
			if err != nil || !bytes.Equal(again, raw) || !c.Equals(b.CID) {
				t.Errorf("re-encode: err %v, equal %v", err, bytes.Equal(again, raw))
			}
			if errs := VerifyBatch([]*Block{b, b}); errs[0] != nil || errs[1] != nil {
				t.Errorf("VerifyBatch: %v", errs)
			}
			// Read back as stored: the same record, and any changed byte
			// refused.
			st, err := ParseStored(b.CID, raw)
			if err != nil || !st.CID.Equals(b.CID) || !reflect.DeepEqual(st.Record, b.Record) {
				t.Errorf("ParseStored = %+v, %v; want %+v", st, err, b.Record)
			}
			for i := range raw {
				bad := bytes.Clone(raw)
				bad[i] ^= 0x40
				if _, err := ParseStored(b.CID, bad); !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseStored with byte %d changed: %v, want ErrInvalid", i, err)
				}
			}
		})
	}
}

// TestCoalitionVectors checks that the coalition's stored vectors hold
// together: the sponsorship's target is the paid contribution that names
// its author as sponsor; the pledges are the sponsor's; the
// acknowledgement names the money pledge, is signed by its beneficiary
// (an association key of the genesis, which it is under) and co-signed,
// and acknowledges part of it; all of one commons whose genesis sets
// policy.coalition, and admitted with that genesis in the batch.
func TestCoalitionVectors(t *testing.T) {
	blocks := map[string]*Block{}
	var batch []*Block
	for _, name := range []string{
		"genesis-coalition", "contribution-sponsored", "profile", "sponsorship",
		"pledge", "pledge-infrastructure", "acknowledgement",
	} {
		var v recordVector
		readJSON(t, filepath.Join("testdata", "records", name+".json"), &v)
		b, err := Validate(unhex(t, v.Record))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		blocks[name] = b
		batch = append(batch, b)
	}
	g, con, pro, spo := blocks["genesis-coalition"], blocks["contribution-sponsored"], blocks["profile"], blocks["sponsorship"]
	if g.Record.Manifest().Coalition() != 1 {
		t.Errorf("genesis policy.coalition = %d, want 1", g.Record.Manifest().Coalition())
	}
	ple, inf, ack := blocks["pledge"], blocks["pledge-infrastructure"], blocks["acknowledgement"]
	for _, b := range []*Block{con, pro, spo, ple, inf, ack} {
		if !b.CommonsID().Equals(g.CID) {
			t.Errorf("%s of commons %s, want %s", b.Record.Type(), b.CommonsID(), g.CID)
		}
	}
	c, s := con.Record.Contribution(), spo.Record.Sponsorship()
	if c.Provenance != ProvenancePaid || c.Sponsor == nil || *c.Sponsor != spo.Record.Author || !s.Target.Equals(con.CID) {
		t.Errorf("the sponsorship %s does not countersign a paid contribution naming its author", spo.CID)
	}
	if p := pro.Record.Profile(); p == nil || len(p.Uses) == 0 || pro.Record.Author != spo.Record.Author {
		t.Errorf("profile %+v: want the sponsor's, with uses", p)
	}
	if ls := spo.Record.Links(); len(ls) != 1 || !ls[0].Equals(con.CID) {
		t.Errorf("sponsorship links %v, want [%s]", ls, con.CID)
	}

	p, ip, a := ple.Record.Pledge(), inf.Record.Pledge(), ack.Record.Acknowledgement()
	if p == nil || p.Kind != PledgeMoney || p.Amount == 0 || p.Currency != "EUR" || p.Peer != "" || p.Beneficiary == nil || p.Until <= p.From {
		t.Errorf("pledge %+v: want money in EUR, with a beneficiary", p)
	}
	if ip == nil || ip.Kind != PledgeInfrastructure || ip.Amount != 0 || ip.Currency != "" || ip.Beneficiary != nil || ip.Until <= ip.From {
		t.Errorf("infrastructure pledge %+v: want no amount, currency or beneficiary", ip)
	} else if node, err := ParsePublicKey(ip.Peer); err != nil || node.String() != ip.Peer || node == inf.Record.Author {
		t.Errorf("infrastructure pledge peer %q: %v; want the 12D3KooW peer ID of another key than its author's", ip.Peer, err)
	}
	for _, b := range []*Block{ple, inf} {
		if b.Record.Author != spo.Record.Author || len(b.Record.Cosigs) != 0 {
			t.Errorf("%s: want the sponsor's, without cosigs", b.CID)
		}
		if u := b.Record.Pledge().Under; !u.Equals(g.CID) {
			t.Errorf("%s under %s, want under the genesis %s", b.CID, u, g.CID)
		}
		if ls := b.Record.Links(); len(ls) != 1 || !ls[0].Equals(g.CID) {
			t.Errorf("%s links %v, want [%s] (its under)", b.CID, ls, g.CID)
		}
	}
	if p != nil && p.Beneficiary != nil && *p.Beneficiary == ple.Record.Author {
		t.Errorf("pledge beneficiary %s is its author", *p.Beneficiary)
	}
	if !a.Pledge.Equals(ple.CID) || a.Under == nil || !a.Under.Equals(g.CID) {
		t.Errorf("acknowledgement of %s under %v, want of %s under %s", a.Pledge, a.Under, ple.CID, g.CID)
	}
	if a.Amount == 0 || a.Amount > p.Amount {
		t.Errorf("acknowledgement amount %d, want a part of the pledge's %d", a.Amount, p.Amount)
	}
	if p.Beneficiary != nil && *p.Beneficiary != ack.Record.Author {
		t.Errorf("acknowledgement by %s, want the pledge's beneficiary %s", ack.Record.Author, *p.Beneficiary)
	}
	if m := g.Record.Manifest(); !m.IsAssociation(ack.Record.Author) || m.Threshold != 1 {
		t.Errorf("acknowledgement author %s: want an association key of the genesis, whose threshold is 1", ack.Record.Author)
	}
	signers := ack.Record.Signers()
	if len(ack.Record.Cosigs) != 1 || len(signers) != 2 || signers[0] == signers[1] {
		t.Errorf("acknowledgement signers %v: want its author and one co-signer", signers)
	}
	want := []cid.Cid{ple.CID, g.CID}
	slices.SortFunc(want, func(x, y cid.Cid) int { return bytes.Compare(x.Bytes(), y.Bytes()) })
	if ls := ack.Record.Links(); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
		t.Errorf("acknowledgement links %v, want %v", ls, want)
	}
	if ack.Record.Time <= ple.Record.Time || ple.Record.Time <= spo.Record.Time {
		t.Errorf("times out of order: sponsorship %d, pledge %d, acknowledgement %d", spo.Record.Time, ple.Record.Time, ack.Record.Time)
	}
	for i, err := range AdmitBatch(batch, g.CID, ack.Record.Time.Millis(), nil) {
		if err != nil {
			t.Errorf("%s: AdmitBatch with its genesis: %v", batch[i].Record.Type(), err)
		}
	}
}

// TestAssociationVectors checks that the association's stored vectors hold
// together: one commons whose genesis sets policy.association, with keys 1
// and 2 as its association and a threshold of 2, which every act of the
// association meets (author and co-signer, both association keys, under the
// genesis); the dispute is about the contribution, the statement and the
// resolution about the dispute, whose effect fits a contribution; the
// release holds the contribution; the contributor rotates to a successor
// that co-signs; all admitted with the genesis in the batch, and refused
// for their type where the genesis were one without policy.association.
func TestAssociationVectors(t *testing.T) {
	names := []string{
		"genesis-association", "contribution-association", "certificate", "certificate-release",
		"dispute", "statement", "resolution", "rotation",
	}
	blocks := map[string]*Block{}
	var batch []*Block
	for _, name := range names {
		var v recordVector
		readJSON(t, filepath.Join("testdata", "records", name+".json"), &v)
		b, err := Validate(unhex(t, v.Record))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		blocks[name] = b
		batch = append(batch, b)
	}
	g, con := blocks["genesis-association"], blocks["contribution-association"]
	cer, rel := blocks["certificate"], blocks["certificate-release"]
	dis, sta, res, rot := blocks["dispute"], blocks["statement"], blocks["resolution"], blocks["rotation"]
	m := g.Record.Manifest()
	if m == nil || !g.Record.IsGenesis() || m.AssociationRecords() != 1 || m.Coalition() != 0 || m.Threshold != 2 || len(m.Association) != 2 {
		t.Fatalf("genesis %+v: want a genesis setting policy.association 1 only, two association keys, threshold 2", m)
	}
	// Every act of the association, the genesis too, is signed by two
	// distinct association keys.
	for _, b := range []*Block{g, cer, rel, res} {
		signers := b.Record.Signers()
		if len(signers) != 2 || signers[0] == signers[1] || !m.IsAssociation(signers[0]) || !m.IsAssociation(signers[1]) {
			t.Errorf("%s %s signed by %v: want both association keys", b.Record.Type(), b.CID, signers)
		}
	}
	for _, b := range batch[1:] {
		if !b.CommonsID().Equals(g.CID) {
			t.Errorf("%s of commons %s, want %s", b.Record.Type(), b.CommonsID(), g.CID)
		}
		if b.Record.Time <= g.Record.Time {
			t.Errorf("%s at %d, not after the genesis", b.Record.Type(), b.Record.Time)
		}
	}
	for i := 2; i < len(batch); i++ {
		if batch[i].Record.Time <= batch[i-1].Record.Time {
			t.Errorf("%s at %d, not after %s at %d", names[i], batch[i].Record.Time, names[i-1], batch[i-1].Record.Time)
		}
	}
	links := func(b *Block, want ...cid.Cid) {
		t.Helper()
		slices.SortFunc(want, func(x, y cid.Cid) int { return bytes.Compare(x.Bytes(), y.Bytes()) })
		if ls := b.Record.Links(); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
			t.Errorf("%s links %v, want %v", b.Record.Type(), ls, want)
		}
	}
	if c := con.Record.Contribution(); c == nil || !c.Licence.Equals(g.CID) || m.IsAssociation(con.Record.Author) {
		t.Errorf("contribution %+v: want one under the genesis, by a key outside the association", c)
	}

	c := cer.Record.Certificate()
	if c == nil || c.Participant == nil || !m.IsMaintainer(*c.Participant) || c.Role != "maintainer" || c.Release != nil || !c.Under.Equals(g.CID) {
		t.Errorf("certificate %+v: want the genesis' maintainer certified as one, under the genesis", c)
	} else if c.Expires <= uint64(cer.Record.Time.Millis()) {
		t.Errorf("certificate expires at %d, before it is made at %d", c.Expires, cer.Record.Time.Millis())
	}
	links(cer, g.CID)
	r := rel.Record.Certificate()
	if r == nil || r.Release == nil || r.Participant != nil || r.Role != "" || !r.Under.Equals(g.CID) {
		t.Fatalf("release certificate %+v: want a release under the genesis", r)
	}
	if len(r.Release.Root) != 32 || len(r.Release.Contributions) != 1 || !r.Release.Contributions[0].Equals(con.CID) || r.Expires <= uint64(rel.Record.Time.Millis()) {
		t.Errorf("release %+v: want a 32-byte root and the contribution, expiring after it is made", r.Release)
	}
	links(rel, g.CID, con.CID)

	d := dis.Record.Dispute()
	if d == nil || d.Subject == nil || !d.Subject.Equals(con.CID) || d.Participant != nil || !d.Under.Equals(g.CID) || len(d.Evidence) == 0 {
		t.Errorf("dispute %+v: want one about the contribution, with evidence, under the genesis", d)
	}
	if dis.Record.Author == con.Record.Author || m.IsAssociation(dis.Record.Author) || len(dis.Record.Cosigs) != 0 {
		t.Errorf("dispute by %s with %d cosigs: want a third key's, without cosigs", dis.Record.Author, len(dis.Record.Cosigs))
	}
	links(dis, g.CID, con.CID)
	s := sta.Record.Statement()
	if s == nil || !s.Dispute.Equals(dis.CID) || sta.Record.Author != con.Record.Author || len(sta.Record.Cosigs) != 0 {
		t.Errorf("statement %+v by %s: want the contributor's, in the dispute, without cosigs", s, sta.Record.Author)
	}
	links(sta, dis.CID)
	v := res.Record.Resolution()
	if v == nil || !v.Dispute.Equals(dis.CID) || v.Outcome != OutcomeUphold || v.Effect != EffectWithdraw || !v.Under.Equals(g.CID) || len(v.Replaces) != 0 {
		t.Errorf("resolution %+v: want the dispute upheld with withdraw (a contribution's effect), under the genesis", v)
	}
	links(res, dis.CID, g.CID)

	x := rot.Record.Rotation()
	if x == nil || rot.Record.Author != con.Record.Author || x.Successor == rot.Record.Author || len(rot.Record.Cosigs) != 1 || rot.Record.Cosigs[0].Key != x.Successor {
		t.Errorf("rotation %+v with cosigs %v: want the contributor's, co-signed by its successor", x, rot.Record.Cosigs)
	} else if x.Successor != NewPrivateKeyFromSeed(seedSuccessor).Public() || m.IsAssociation(x.Successor) || m.IsMaintainer(x.Successor) {
		t.Errorf("rotation successor %s: want the 08×32 key, named by no manifest", x.Successor)
	}
	links(rot)

	last := rot.Record.Time.Millis()
	for i, err := range AdmitBatch(batch, g.CID, last, nil) {
		if err != nil {
			t.Errorf("%s: AdmitBatch with its genesis: %v", names[i], err)
		}
	}
	rule := func(c cid.Cid) (*Manifest, error) {
		if c.Equals(g.CID) {
			return m, nil
		}
		return nil, fmt.Errorf("no genesis of %s here: %w", c, ErrNoGenesis)
	}
	without := func(c cid.Cid) (*Manifest, error) {
		return &Manifest{Name: "Example commons", Licence: "CC-BY-SA-4.0", Association: m.Association, Threshold: 2}, nil
	}
	for _, b := range batch[1:] {
		if _, err := Admit(b.Raw, g.CID, last, rule); err != nil {
			t.Errorf("%s: Admit with its genesis: %v", b.Record.Type(), err)
		}
		_, err := Admit(b.Raw, g.CID, last, without)
		if b == con {
			if err != nil {
				t.Errorf("contribution: Admit where the genesis does not set policy.association: %v", err)
			}
			continue
		}
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != "type" {
			t.Errorf("%s: Admit where the genesis does not set policy.association: %v; want it refused naming type", b.Record.Type(), err)
		}
	}
}

// TestMalformedVectors checks that every malformed vector fails Validate
// with the stored sentinel, inside a FieldError naming the stored field.
func TestMalformedVectors(t *testing.T) {
	var vecs []malformedVector
	readJSON(t, filepath.Join("testdata", "malformed.json"), &vecs)
	if len(vecs) == 0 {
		t.Fatal("no malformed vectors")
	}
	for _, v := range vecs {
		t.Run(v.Name, func(t *testing.T) {
			want, ok := sentinels[v.Error]
			if !ok {
				t.Fatalf("unknown sentinel %q", v.Error)
			}
			_, err := Validate(unhex(t, v.Record))
			checkFieldErr(t, err, want, v.Field)
		})
	}
}

func checkFieldErr(t *testing.T, err, want error, field string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v is not a *FieldError", err)
	}
	if fe.Field != field {
		t.Fatalf("field = %q, want %q (err %v)", fe.Field, field, err)
	}
}

// TestEd25519EdgeCases checks the pinned rule against the fixed edge cases,
// that single and batch verification agree on each of them, and that
// crypto/ed25519 decides them as recorded (it disagrees on several, which is
// why it must not be used to validate records).
func TestEd25519EdgeCases(t *testing.T) {
	var vecs []edgeVector
	readJSON(t, filepath.Join("testdata", "ed25519-edge-cases.json"), &vecs)
	disagree := 0
	var all []*Block
	var allMsgs [][]byte
	for _, v := range vecs {
		var key PublicKey
		var sig Signature
		copy(key[:], unhex(t, v.PublicKey))
		copy(sig[:], unhex(t, v.Signature))
		msg := unhex(t, v.Message)
		// The vectors sign arbitrary messages, not records: the batch is
		// verified over them (verifyBatchWith, which VerifyBatch runs).
		b := &Block{Record: &Record{Author: key, Sig: sig}}
		all = append(all, b)
		allMsgs = append(allMsgs, msg)
		if got := VerifySignature(key, msg, sig); got != v.ZIP215 {
			t.Errorf("%s: VerifySignature = %v, want %v", v.Name, got, v.ZIP215)
		}
		for _, n := range []int{2, 3, 64} {
			blocks := make([]*Block, n)
			for i := range blocks {
				blocks[i] = b
			}
			for i, err := range verifyBatchWith(blocks, slices.Repeat([][]byte{msg}, n), make([]error, n)) {
				if (err == nil) != v.ZIP215 {
					t.Errorf("%s: VerifyBatch(%d)[%d] = %v, want valid=%v", v.Name, n, i, err, v.ZIP215)
				}
			}
		}
		if got := stdlibVerify(key, msg, sig); got != v.Stdlib {
			t.Errorf("%s: crypto/ed25519 = %v, recorded %v", v.Name, got, v.Stdlib)
		}
		if v.Stdlib != v.ZIP215 {
			disagree++
		}
	}
	if disagree == 0 {
		t.Error("no vector on which crypto/ed25519 and ZIP-215 disagree")
	}
	// All the edge cases in one batch, so that invalid ones sit beside valid.
	for i, err := range verifyBatchWith(all, allMsgs, make([]error, len(all))) {
		if (err == nil) != vecs[i].ZIP215 {
			t.Errorf("mixed batch: %s: %v, want valid=%v", vecs[i].Name, err, vecs[i].ZIP215)
		}
		if err != nil {
			checkFieldErr(t, err, ErrBadSignature, "sig")
		}
	}
}

// The malformed vectors are built by editing the envelope or body maps of
// the valid vectors at the CBOR level.

// cborHead encodes a CBOR head with the shortest argument.
func cborHead(major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return []byte{m | byte(n)}
	case n <= 0xff:
		return []byte{m | 24, byte(n)}
	case n <= 0xffff:
		return []byte{m | 25, byte(n >> 8), byte(n)}
	case n <= 0xffffffff:
		return []byte{m | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return []byte{m | 27, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func cborText(s string) []byte { return append(cborHead(3, uint64(len(s))), s...) }

func cborBytes(b []byte) []byte { return append(cborHead(2, uint64(len(b))), b...) }

type kv struct {
	k string
	v []byte
}

// cborMap is an editable CBOR map of text keys to encoded values.
type cborMap []kv

func decodeMap(raw []byte) (cborMap, error) {
	var m map[string]cbor.RawMessage
	if err := cbor.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	var out cborMap
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	out.sortCanonical()
	return out, nil
}

func (m cborMap) sortCanonical() {
	slices.SortFunc(m, func(a, b kv) int {
		if len(a.k) != len(b.k) {
			return len(a.k) - len(b.k)
		}
		return bytes.Compare([]byte(a.k), []byte(b.k))
	})
}

func (m cborMap) set(k string, v []byte) cborMap {
	out := slices.Clone(m)
	for i := range out {
		if out[i].k == k {
			out[i].v = v
			return out
		}
	}
	out = append(out, kv{k, v})
	out.sortCanonical()
	return out
}

func (m cborMap) del(k string) cborMap {
	return slices.DeleteFunc(slices.Clone(m), func(e kv) bool { return e.k == k })
}

func (m cborMap) get(k string) []byte {
	for _, e := range m {
		if e.k == k {
			return e.v
		}
	}
	return nil
}

func (m cborMap) encode() []byte {
	out := cborHead(5, uint64(len(m)))
	for _, e := range m {
		out = append(append(out, cborText(e.k)...), e.v...)
	}
	return out
}

func (m cborMap) encodeIndefinite() []byte {
	out := []byte{0xbf}
	for _, e := range m {
		out = append(append(out, cborText(e.k)...), e.v...)
	}
	return append(out, 0xff)
}

// withBody returns env with its body map edited by f.
func withBody(env cborMap, f func(cborMap) cborMap) (cborMap, error) {
	body, err := decodeMap(env.get("body"))
	if err != nil {
		return nil, err
	}
	return env.set("body", f(body).encode()), nil
}

func cborLink(c cid.Cid, prefix bool) []byte {
	content := c.Bytes()
	if prefix {
		content = append([]byte{0}, content...)
	}
	return append([]byte{0xd8, 42}, cborBytes(content)...)
}

// buildMalformed derives the malformed-record vectors from the valid ones.
func buildMalformed(vs *vectorSet) ([]malformedVector, error) {
	gen, err := decodeMap(vs.genesis.Raw)
	if err != nil {
		return nil, err
	}
	con, err := decodeMap(vs.contribution.Raw)
	if err != nil {
		return nil, err
	}
	upd, err := decodeMap(vs.update.Raw)
	if err != nil {
		return nil, err
	}
	var out []malformedVector
	add := func(name string, raw []byte, sentinel, field string) {
		out = append(out, malformedVector{name, hex.EncodeToString(raw), sentinel, field})
	}
	edit := func(name string, env cborMap, f func(cborMap) cborMap, sentinel, field string) {
		e, berr := withBody(env, f)
		if berr != nil {
			err = berr
			return
		}
		add(name, e.encode(), sentinel, field)
	}

	bytewise := slices.Clone(gen)
	slices.SortFunc(bytewise, func(a, b kv) int { return bytes.Compare([]byte(a.k), []byte(b.k)) })
	add("non-canonical key order (bytewise, not length-first)", bytewise.encode(), "ErrNonCanonical", "record")
	edit("non-minimal integer (threshold 1 as 0x18 0x01)", gen, func(b cborMap) cborMap {
		return b.set("threshold", []byte{0x18, 0x01})
	}, "ErrNonCanonical", "record")
	add("non-minimal length (type string length in one extra byte)", gen.set("type", append([]byte{0x78, 8}, "manifest"...)).encode(), "ErrNonCanonical", "record")
	add("indefinite-length map", gen.encodeIndefinite(), "ErrMalformed", "record")
	add("indefinite-length text string", gen.set("type", append(append([]byte{0x7f}, cborText("manifest")...), 0xff)).encode(), "ErrMalformed", "record")
	add("trailing bytes", append(slices.Clone(vs.genesis.Raw), 0x00), "ErrMalformed", "record")
	dup := slices.Clone(gen)
	i := slices.IndexFunc(dup, func(e kv) bool { return e.k == "time" })
	dup = slices.Insert(dup, i, dup[i])
	add("duplicate map key (time twice)", dup.encode(), "ErrMalformed", "record")
	add("unknown envelope field", gen.set("extra", []byte{0x00}).encode(), "ErrMalformed", "record")
	edit("unknown body field", gen, func(b cborMap) cborMap { return b.set("colour", cborText("red")) }, "ErrMalformed", "body")
	add("float time", gen.set("time", []byte{0xfb, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00}).encode(), "ErrMalformed", "record")
	add("self-described CBOR tag 55799 around the record", append([]byte{0xd9, 0xd9, 0xf7}, vs.genesis.Raw...), "ErrNonCanonical", "record")
	add("author of 31 bytes", gen.set("author", cborBytes(make([]byte, 31))).encode(), "ErrInvalid", "author")
	add("author missing", gen.del("author").encode(), "ErrMissing", "author")
	add("author as text string", gen.set("author", cborText(string(bytes.Repeat([]byte{'a'}, 32)))).encode(), "ErrMalformed", "record")
	add("sig missing", gen.del("sig").encode(), "ErrMissing", "sig")
	add("sig of 63 bytes", gen.set("sig", cborBytes(make([]byte, 63))).encode(), "ErrInvalid", "sig")
	add("unknown type", gen.set("type", cborText("bounty")).encode(), "ErrUnknownType", "type")
	add("body missing", gen.del("body").encode(), "ErrMissing", "body")
	add("links missing", con.del("links").encode(), "ErrInvalid", "links")
	add("links with an extra CID", con.set("links", append(cborHead(4, 2), append(cborLink(vs.genesis.CID, true), cborLink(vs.update.CID, true)...)...)).encode(), "ErrInvalid", "links")
	add("links on a genesis manifest", gen.set("links", append(cborHead(4, 1), cborLink(vs.update.CID, true)...)).encode(), "ErrInvalid", "links")
	add("empty links array present", gen.set("links", cborHead(4, 0)).encode(), "ErrNonCanonical", "record")
	edit("empty optional field present (summary \"\")", con, func(b cborMap) cborMap { return b.set("summary", cborText("")) }, "ErrNonCanonical", "record")
	edit("link without the 0x00 multibase prefix", con, func(b cborMap) cborMap { return b.set("licence", cborLink(vs.update.CID, false)) }, "ErrMalformed", "body")
	v0, _ := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	edit("CIDv0 licence link", con, func(b cborMap) cborMap { return b.set("licence", cborLink(v0, true)) }, "ErrInvalid", "body.licence")
	edit("contribution without licence", con, func(b cborMap) cborMap { return b.del("licence") }, "ErrMissing", "body.licence")
	add("commons missing on a contribution", con.del("commons").encode(), "ErrMissing", "commons")
	add("commons link to a raw CID", con.set("commons", cborLink(BlobCID(nil), true)).encode(), "ErrInvalid", "commons")
	add("time zero", con.set("time", []byte{0x00}).encode(), "ErrMissing", "time")
	edit("unknown provenance", con, func(b cborMap) cborMap { return b.set("provenance", cborText("stolen")) }, "ErrInvalid", "body.provenance")
	edit("unknown review decision", mustDecode(vs.review.Raw), func(b cborMap) cborMap { return b.set("decision", cborText("maybe")) }, "ErrInvalid", "body.decision")
	add("cosigs on a contribution", con.set("cosigs", upd.get("cosigs")).encode(), "ErrInvalid", "cosigs")
	badSig := vs.contribution.Record.Sig
	badSig[32] ^= 0x01 // lowest byte of S
	add("bad signature (low bit of S flipped)", con.set("sig", cborBytes(badSig[:])).encode(), "ErrBadSignature", "sig")
	var cs []Cosig
	if cerr := decMode.Unmarshal(upd.get("cosigs"), &cs); cerr != nil {
		return nil, cerr
	}
	cs[0].Sig[0] ^= 0x01
	csRaw, cerr := encMode.Marshal(cs)
	if cerr != nil {
		return nil, cerr
	}
	add("bad co-signature", upd.set("cosigs", csRaw).encode(), "ErrBadSignature", "cosigs[0].sig")
	return out, err
}

func stdlibVerify(key PublicKey, msg []byte, sig Signature) bool {
	return ed25519.Verify(key[:], msg, sig[:])
}

func mustDecode(raw []byte) cborMap {
	m, err := decodeMap(raw)
	if err != nil {
		panic(err)
	}
	return m
}
