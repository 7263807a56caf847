package protocol

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

// zeroBits counts leading zero bits the slow way, bit by bit: the
// definition of §7.4, written apart from workOf.
func zeroBits(sum [32]byte) int {
	for i := range 256 {
		if sum[i/8]&(0x80>>(i%8)) != 0 {
			return i
		}
	}
	return 256
}

// sealed signs r with k and returns its block.
func sealed(t *testing.T, r *Record, k PrivateKey) *Block {
	t.Helper()
	if err := Sign(r, k); err != nil {
		t.Fatal(err)
	}
	b, err := NewBlock(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withWork returns a contribution of testCommons at vectorTime or later
// whose work is at least bits (solved) or, with bits < 0, below -bits.
func withWork(t *testing.T, bits int) *Block {
	t.Helper()
	r := contributionRecord()
	if bits >= 0 {
		ok, err := SolveWork(r, bits, 1<<(bits+8))
		if err != nil || !ok {
			t.Fatalf("SolveWork(%d) = %v, %v", bits, ok, err)
		}
		return sealed(t, r, testKey(9))
	}
	for {
		b := sealed(t, r, testKey(9))
		if b.Work() < -bits {
			return b
		}
		r.Time++
	}
}

// SolveWork finds a time at which the record carries the work asked,
// checked here with the bit-by-bit definition over a fresh encoding; the
// time only moves forward, and nothing but the time changes.
func TestSolveWork(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, small := range []bool{false, true} {
		for bits := range 13 {
			r := contributionRecord()
			r.Body.(*Contribution).Title = fmt.Sprintf("title %d", rng.Uint64())
			if small {
				r.Time = HLC(1 << 20) // a time below 2^32: encoded again for each try
			}
			before := r.Time
			ok, err := SolveWork(r, bits, 1<<(bits+8))
			if err != nil || !ok {
				t.Fatalf("bits %d (small %v): %v, %v", bits, small, ok, err)
			}
			if r.Time < before {
				t.Fatalf("bits %d: time moved back from %d to %d", bits, before, r.Time)
			}
			msg, err := r.signingBytes()
			if err != nil {
				t.Fatal(err)
			}
			if got := zeroBits(sha256.Sum256(msg)); got < bits {
				t.Fatalf("bits %d (small %v): the solved record carries %d", bits, small, got)
			}
			// The least such time: every earlier one carries less.
			for tt := before; tt < r.Time && tt < before+64; tt++ {
				r2 := *r
				r2.Time = tt
				m2, _ := r2.signingBytes()
				if zeroBits(sha256.Sum256(m2)) >= bits {
					t.Fatalf("bits %d: time %d already carried the work, SolveWork chose %d", bits, tt, r.Time)
				}
			}
			b := sealed(t, r, testKey(9))
			if b.Work() != zeroBits(sha256.Sum256(msg)) {
				t.Fatalf("Work = %d, want %d", b.Work(), zeroBits(sha256.Sum256(msg)))
			}
		}
	}
	// Too few tries: false, and the record is left as it was.
	r := contributionRecord()
	for r.Time = HLCFromMillis(vectorTime, 0); ; r.Time++ {
		m, _ := r.signingBytes()
		if zeroBits(sha256.Sum256(m)) < 1 {
			break
		}
	}
	before := r.Time
	if ok, err := SolveWork(r, 200, 10); ok || err != nil || r.Time != before {
		t.Fatalf("SolveWork(200 bits, 10 tries) = %v, %v, time %d (was %d)", ok, err, r.Time, before)
	}
}

// What a commons asks is enforced before signatures are checked, from the
// genesis alone: records short of it are refused for good, records of a
// commons whose genesis is not at hand are delayed, and a genesis in the
// same batch sets the rule for the others.
func TestAdmitWork(t *testing.T) {
	const asked = 10
	rule := func(c cid.Cid) (*Manifest, error) {
		if c.Equals(testCommons) {
			return &Manifest{Policy: &Policy{Work: asked}}, nil
		}
		return nil, fmt.Errorf("no genesis of %s here: %w", c, ErrNoGenesis)
	}
	enough := withWork(t, asked)
	short := withWork(t, -asked)
	forgedShort := withWork(t, -asked)
	forgedShort.Record.Sig[3] ^= 1
	forgedShort.Raw, _, _ = Encode(forgedShort.Record)
	forgedEnough := withWork(t, asked)
	forgedEnough.Record.Sig[3] ^= 1
	forgedEnough.Raw, _, _ = Encode(forgedEnough.Record)
	other := contributionRecord()
	other.Commons = testOther
	otherBlk := sealed(t, other, testKey(9))

	cases := []struct {
		name string
		b    *Block
		want error
	}{
		{"enough work", enough, nil},
		{"short of work", short, ErrNoWork},
		// Work is checked first: a forgery short of work costs a hash,
		// not a signature check.
		{"forged, short of work", forgedShort, ErrNoWork},
		{"forged, enough work", forgedEnough, ErrBadSignature},
	}
	for _, c := range cases {
		_, err := Admit(c.b.Raw, testCommons, vectorTime, rule)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Admit: %v, want %v", c.name, err, c.want)
		}
		if errs := AdmitBatch([]*Block{enough, c.b}, testCommons, vectorTime, rule); !errors.Is(errs[1], c.want) || (c.want == nil) != (errs[1] == nil) || errs[0] != nil {
			t.Errorf("%s: AdmitBatch: %v, want %v", c.name, errs, c.want)
		}
		if Permanent(err) != (c.want != nil) {
			t.Errorf("%s: Permanent(%v) = %v", c.name, err, Permanent(err))
		}
	}
	// No rule (nil): nothing is asked.
	if _, err := Admit(short.Raw, testCommons, vectorTime, nil); err != nil {
		t.Errorf("no rule: %v", err)
	}
	// A commons whose genesis is not at hand: delayed, not refused.
	_, err := Admit(otherBlk.Raw, cid.Undef, vectorTime, rule)
	if !errors.Is(err, ErrNoGenesis) || Permanent(err) {
		t.Errorf("unknown genesis: %v (permanent %v), want a delay", err, Permanent(err))
	}
	// A fault every node decides the same way is named before the delay.
	forgedOther := sealed(t, other, testKey(9))
	forgedOther.Record.Sig[3] ^= 1
	forgedOther.Raw, _, _ = Encode(forgedOther.Record)
	if _, err := Admit(forgedOther.Raw, cid.Undef, vectorTime, rule); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged, unknown genesis: %v, want a bad signature", err)
	}
	// A genesis in the batch sets its commons' rule for the others, and
	// is itself asked nothing.
	k := testKey(4)
	g := genesisRecord(k.Public())
	g.Body.(*Manifest).Policy = &Policy{Work: asked}
	gb := sealed(t, g, k)
	weak := contributionRecord()
	weak.Commons, weak.Body.(*Contribution).Licence = gb.CID, Link{gb.CID}
	for ; ; weak.Time++ {
		if wb := sealed(t, weak, testKey(9)); wb.Work() < asked {
			break
		}
	}
	weakBlk := sealed(t, weak, testKey(9))
	strong := contributionRecord()
	strong.Commons, strong.Body.(*Contribution).Licence = gb.CID, Link{gb.CID}
	if ok, _ := SolveWork(strong, asked, 1<<20); !ok {
		t.Fatal("no solution")
	}
	strongBlk := sealed(t, strong, testKey(9))
	errs := AdmitBatch([]*Block{weakBlk, gb, strongBlk}, cid.Undef, vectorTime, rule)
	if errs[1] != nil || errs[2] != nil || !errors.Is(errs[0], ErrNoWork) {
		t.Errorf("genesis in the batch: %v; want the weak record refused for its work, the others admitted", errs)
	}
	// A genesis in the batch that is itself refused vouches for nothing.
	late := genesisRecord(k.Public())
	late.Body.(*Manifest).Policy = &Policy{Work: asked}
	late.Time = HLCFromMillis(vectorTime+MaxClockSkewMillis+60_000, 0)
	lb := sealed(t, late, k)
	lateRec := contributionRecord()
	lateRec.Commons, lateRec.Body.(*Contribution).Licence = lb.CID, Link{lb.CID}
	if ok, _ := SolveWork(lateRec, asked, 1<<20); !ok {
		t.Fatal("no solution")
	}
	lateBlk := sealed(t, lateRec, testKey(9))
	errs = AdmitBatch([]*Block{lb, lateBlk}, cid.Undef, vectorTime, rule)
	if !errors.Is(errs[0], ErrFutureTime) || !errors.Is(errs[1], ErrNoGenesis) {
		t.Errorf("a genesis from the future in the batch: %v; want it delayed, and its record delayed for want of it", errs)
	}
	// The genesis may be anywhere in the batch, and with it, rule is not asked.
	errs = AdmitBatch([]*Block{gb, weakBlk}, gb.CID, vectorTime, nil)
	if errs[0] != nil || !errors.Is(errs[1], ErrNoWork) {
		t.Errorf("genesis first, no rule: %v", errs)
	}
}

// Only a genesis asks for work, within MaxWork.
func TestValidatePolicyWork(t *testing.T) {
	k := testKey(4)
	for _, c := range []struct {
		name  string
		rec   *Record
		work  uint64
		field string
	}{
		{"genesis", genesisRecord(k.Public()), MaxWork, ""},
		{"genesis above the limit", genesisRecord(k.Public()), MaxWork + 1, "body.policy.work"},
		{"update", updateRecord(k.Public()), 1, "body.policy.work"},
	} {
		c.rec.Body.(*Manifest).Policy = &Policy{Work: c.work}
		if err := Sign(c.rec, k); err != nil {
			if c.field == "" {
				t.Errorf("%s: %v", c.name, err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want %s invalid", c.name, err, c.field)
			}
			continue
		}
		if c.field != "" {
			t.Errorf("%s: signed, want %s refused", c.name, c.field)
			continue
		}
		b, err := NewBlock(c.rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b.Raw); err != nil {
			t.Errorf("%s: Parse: %v", c.name, err)
		}
	}
}

// Bans are the genesis's to allow (§7.5): a manifest update that bans keys
// is refused for good in a commons whose genesis does not allow them, and
// admitted in one whose genesis does, the genesis in the same batch
// counting; an update cannot allow them itself.
func TestAdmitBans(t *testing.T) {
	k := testKey(4)
	allowing := genesisRecord(k.Public())
	allowing.Body.(*Manifest).Policy = &Policy{Bans: true}
	allowingBlk := sealed(t, allowing, k)
	plain := sealed(t, genesisRecord(k.Public()), k)
	geneses := map[cid.Cid]*Manifest{allowingBlk.CID: allowingBlk.Record.Manifest(), plain.CID: plain.Record.Manifest()}
	rule := func(c cid.Cid) (*Manifest, error) {
		if g := geneses[c]; g != nil {
			return g, nil
		}
		return nil, fmt.Errorf("no genesis of %s here: %w", c, ErrNoGenesis)
	}
	ban := func(g *Block) *Block {
		u := updateRecord(k.Public())
		u.Commons = g.CID
		m := u.Body.(*Manifest)
		m.Prev = []Link{{g.CID}}
		m.Banned = []PublicKey{testKey(9).Public()}
		return sealed(t, u, k)
	}
	if _, err := Admit(ban(allowingBlk).Raw, cid.Undef, vectorTime, rule); err != nil {
		t.Errorf("a ban where the genesis allows bans: %v", err)
	}
	_, err := Admit(ban(plain).Raw, cid.Undef, vectorTime, rule)
	if !errors.Is(err, ErrInvalid) || !Permanent(err) || !strings.Contains(err.Error(), "body.banned") || !strings.Contains(err.Error(), "policy.bans") {
		t.Errorf("a ban where the genesis does not allow bans: %v; want it refused for good, naming body.banned and policy.bans", err)
	}
	if _, err := Admit(ban(plain).Raw, cid.Undef, vectorTime, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("a ban with no genesis rule: %v; want it refused", err)
	}
	if errs := AdmitBatch([]*Block{ban(allowingBlk), allowingBlk}, cid.Undef, vectorTime, nil); errs[0] != nil || errs[1] != nil {
		t.Errorf("a ban with its allowing genesis in the batch: %v", errs)
	}
	u := updateRecord(k.Public())
	u.Body.(*Manifest).Policy = &Policy{Bans: true}
	var fe *FieldError
	if err := Sign(u, k); !errors.As(err, &fe) || fe.Field != "body.policy.bans" || !errors.Is(err, ErrInvalid) {
		t.Errorf("an update allowing bans: %v; want it refused, naming body.policy.bans", err)
	}
}

// The coalition's records are the genesis's to allow (§7.6): a profile, a
// sponsorship, a pledge or an acknowledgement is refused for good, naming
// its type, in a commons whose
// genesis does not set policy.coalition, and admitted in one whose genesis
// does, the genesis in the same batch counting; an update cannot set it.
func TestAdmitCoalition(t *testing.T) {
	k := testKey(4)
	carrying := genesisRecord(k.Public())
	carrying.Body.(*Manifest).Policy = &Policy{Coalition: 1}
	carryingBlk := sealed(t, carrying, k)
	plain := sealed(t, genesisRecord(k.Public()), k)
	// A genesis that sets other policy, but not the coalition.
	other := genesisRecord(k.Public())
	other.Body.(*Manifest).Policy = &Policy{Bans: true, MaxBlobBytes: 1 << 20}
	otherBlk := sealed(t, other, k)
	geneses := map[cid.Cid]*Manifest{
		carryingBlk.CID: carryingBlk.Record.Manifest(), plain.CID: plain.Record.Manifest(), otherBlk.CID: otherBlk.Record.Manifest(),
	}
	rule := func(c cid.Cid) (*Manifest, error) {
		if g := geneses[c]; g != nil {
			return g, nil
		}
		return nil, fmt.Errorf("no genesis of %s here: %w", c, ErrNoGenesis)
	}
	in := func(g *Block) (profile, sponsorship, contribution *Block) {
		p := profileRecord()
		p.Commons = g.CID
		s := sponsorshipRecord()
		s.Commons = g.CID
		c := contributionRecord()
		c.Commons, c.Body.(*Contribution).Licence = g.CID, Link{g.CID}
		s.Body.(*Sponsorship).Target = Link{sealed(t, c, testKey(9)).CID}
		return sealed(t, p, testKey(9)), sealed(t, s, testKey(9)), sealed(t, c, testKey(9))
	}
	// A pledge, and its acknowledgement co-signed under the genesis.
	pledges := func(g *Block) (pledge, ack *Block) {
		p := pledgeRecord()
		p.Commons, p.Body.(*Pledge).Under = g.CID, Link{g.CID}
		pledge = sealed(t, p, testKey(9))
		a := acknowledgementRecord()
		a.Commons, a.Author = g.CID, k.Public()
		a.Body.(*Acknowledgement).Pledge, a.Body.(*Acknowledgement).Under = Link{pledge.CID}, &Link{g.CID}
		if err := Sign(a, k); err != nil {
			t.Fatal(err)
		}
		if err := Cosign(a, testKey(5)); err != nil {
			t.Fatal(err)
		}
		ack, err := NewBlock(a)
		if err != nil {
			t.Fatal(err)
		}
		return pledge, ack
	}
	refused := func(name string, err error) {
		t.Helper()
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !Permanent(err) || !errors.As(err, &fe) || fe.Field != "type" || !strings.Contains(err.Error(), "policy.coalition") {
			t.Errorf("%s: %v; want it refused for good, naming field type and policy.coalition", name, err)
		}
	}

	p, s, c := in(carryingBlk)
	pl, ack := pledges(carryingBlk)
	if len(ack.Record.Cosigs) != 1 {
		t.Fatalf("acknowledgement cosigs %v, want one", ack.Record.Cosigs)
	}
	for _, b := range []*Block{p, s, c, pl, ack} {
		if _, err := Admit(b.Raw, carryingBlk.CID, vectorTime, rule); err != nil {
			t.Errorf("a %s where the genesis sets policy.coalition: %v", b.Record.Type(), err)
		}
	}
	if errs := AdmitBatch([]*Block{p, carryingBlk, s, c, pl, ack}, carryingBlk.CID, vectorTime, nil); slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		t.Errorf("a profile, a sponsorship, a pledge and an acknowledgement with their genesis in the batch: %v", errs)
	}
	// Without the genesis at hand, they wait.
	for _, b := range []*Block{p, s, pl, ack} {
		if _, err := Admit(b.Raw, cid.Undef, vectorTime, func(c cid.Cid) (*Manifest, error) {
			return nil, fmt.Errorf("no genesis of %s here: %w", c, ErrNoGenesis)
		}); !errors.Is(err, ErrNoGenesis) || Permanent(err) {
			t.Errorf("a %s whose genesis is not at hand: %v; want a delay", b.Record.Type(), err)
		}
	}

	for _, g := range []*Block{plain, otherBlk} {
		p, s, c := in(g)
		pl, ack := pledges(g)
		for _, b := range []*Block{p, s, pl, ack} {
			_, err := Admit(b.Raw, g.CID, vectorTime, rule)
			refused(fmt.Sprintf("a %s where the genesis does not set policy.coalition", b.Record.Type()), err)
		}
		// What every commons carries is not asked for the coalition.
		if _, err := Admit(c.Raw, g.CID, vectorTime, rule); err != nil {
			t.Errorf("a contribution where the genesis does not set policy.coalition: %v", err)
		}
		errs := AdmitBatch([]*Block{p, g, s, c, pl, ack}, g.CID, vectorTime, nil)
		refused("a profile with its genesis, without policy.coalition, in the batch", errs[0])
		refused("a sponsorship with its genesis, without policy.coalition, in the batch", errs[2])
		refused("a pledge with its genesis, without policy.coalition, in the batch", errs[4])
		refused("an acknowledgement with its genesis, without policy.coalition, in the batch", errs[5])
		if errs[1] != nil || errs[3] != nil {
			t.Errorf("the genesis and a contribution in the batch: %v", errs)
		}
	}
	// No rule (nil): no genesis lets the commons carry them.
	pp, ps, _ := in(plain)
	ppl, pack := pledges(plain)
	for _, b := range []*Block{pp, ps, ppl, pack} {
		_, err := Admit(b.Raw, cid.Undef, vectorTime, nil)
		refused(fmt.Sprintf("a %s with no genesis rule", b.Record.Type()), err)
	}
	// The genesis of another commons in the batch vouches for nothing.
	errs := AdmitBatch([]*Block{carryingBlk, pp, ps, ppl, pack}, cid.Undef, vectorTime, rule)
	if errs[0] != nil {
		t.Errorf("genesis: %v", errs[0])
	}
	refused("a profile beside another commons' genesis", errs[1])
	refused("a sponsorship beside another commons' genesis", errs[2])
	refused("a pledge beside another commons' genesis", errs[3])
	refused("an acknowledgement beside another commons' genesis", errs[4])
	// The rule is checked before signatures, as the work is: a forged
	// profile where the genesis does not set policy.coalition is refused
	// for its type, at the cost of no signature check.
	forged := *pp.Record
	forged.Sig[7] ^= 1
	fb, err := NewBlock(&forged)
	if err != nil {
		t.Fatal(err)
	}
	refused("a forged profile where the genesis does not set policy.coalition", AdmitBatch([]*Block{fb}, cid.Undef, vectorTime, rule)[0])
	// So is an acknowledgement with a forged co-signature; where the
	// genesis sets policy.coalition, the co-signature is what fails.
	for _, g := range []*Block{plain, carryingBlk} {
		_, a := pledges(g)
		forgedAck := *a.Record
		forgedAck.Cosigs = slices.Clone(a.Record.Cosigs)
		forgedAck.Cosigs[0].Sig[7] ^= 1
		fa, err := NewBlock(&forgedAck)
		if err != nil {
			t.Fatal(err)
		}
		err = AdmitBatch([]*Block{fa}, cid.Undef, vectorTime, rule)[0]
		if g == plain {
			refused("an acknowledgement with a forged co-signature where the genesis does not set policy.coalition", err)
		} else {
			checkFieldErr(t, err, ErrBadSignature, "cosigs[0].sig")
		}
	}

	u := updateRecord(k.Public())
	u.Body.(*Manifest).Policy = &Policy{Coalition: 1}
	var fe *FieldError
	if err := Sign(u, k); !errors.As(err, &fe) || fe.Field != "body.policy.coalition" || !errors.Is(err, ErrInvalid) {
		t.Errorf("an update setting policy.coalition: %v; want it refused, naming body.policy.coalition", err)
	}
}

// CoalitionOf names the version that brought each type, and this package
// knows every version it names.
func TestCoalitionOf(t *testing.T) {
	for _, c := range []struct {
		t    Type
		want int
	}{
		{TypeManifest, 0}, {TypeContribution, 0}, {TypeReview, 0},
		{TypeProfile, 1}, {TypeSponsorship, 1}, {TypePledge, 1}, {TypeAcknowledgement, 1}, {Type("bounty"), 0},
	} {
		if got := CoalitionOf(c.t); got != c.want || got > CoalitionVersion {
			t.Errorf("CoalitionOf(%s) = %d, want %d (at most %d)", c.t, got, c.want, CoalitionVersion)
		}
	}
	var nilManifest *Manifest
	for _, c := range []struct {
		m    *Manifest
		want int
	}{
		{nilManifest, 0}, {&Manifest{}, 0}, {&Manifest{Policy: &Policy{Work: 3}}, 0}, {&Manifest{Policy: &Policy{Coalition: 1}}, 1},
	} {
		if got := c.m.Coalition(); got != c.want {
			t.Errorf("%+v.Coalition() = %d, want %d", c.m, got, c.want)
		}
	}
}
