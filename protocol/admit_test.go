package protocol

import (
	"errors"
	"math/rand/v2"

	"github.com/ipfs/go-cid"
	"testing"
)

// admitCases are records of each kind admission tells apart, for commons
// testCommons at vectorTime: the error each must get (nil: admitted).
func admitCases(t *testing.T) []struct {
	name string
	raw  []byte
	want error
} {
	t.Helper()
	seal := func(r *Record, k PrivateKey, spoil bool) []byte {
		if err := Sign(r, k); err != nil {
			t.Fatal(err)
		}
		if spoil {
			r.Sig[5] ^= 0x40
		}
		raw, _, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	k := testKey(9)
	ahead := contributionRecord()
	ahead.Time = HLCFromMillis(vectorTime+MaxClockSkewMillis+1, 0)
	edge := contributionRecord()
	edge.Time = HLCFromMillis(vectorTime+MaxClockSkewMillis, 0)
	other := contributionRecord()
	other.Commons = testOther
	genesisOther := genesisRecord(k.Public())
	return []struct {
		name string
		raw  []byte
		want error
	}{
		{"contribution", seal(contributionRecord(), k, false), nil},
		{"review", seal(reviewRecord(), k, false), nil},
		{"at the clock's limit", seal(edge, k, false), nil},
		{"past the clock's limit", seal(ahead, k, false), ErrFutureTime},
		{"forged signature", seal(contributionRecord(), k, true), ErrBadSignature},
		{"another commons", seal(other, k, false), ErrWrongCommons},
		{"another commons' genesis", seal(genesisOther, k, false), ErrWrongCommons},
	}
}

// Admit and AdmitBatch give every record the same verdict, alone or in any
// mixed batch, and Permanent tells a delay from a refusal.
func TestAdmit(t *testing.T) {
	cases := admitCases(t)
	var blocks []*Block
	for _, c := range cases {
		b, err := Admit(c.raw, testCommons, vectorTime, nil)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) || (err == nil) != (b != nil) {
			t.Errorf("%s: Admit = %v, %v; want %v", c.name, b, err, c.want)
		}
		if Permanent(err) != (c.want != nil && c.want != ErrFutureTime) {
			t.Errorf("%s: Permanent(%v) = %v", c.name, err, Permanent(err))
		}
		if _, err := Admit(c.raw, testCommons, vectorTime, nil); c.want == ErrWrongCommons {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "commons" {
				t.Errorf("%s: %v names no field commons", c.name, err)
			}
		}
		p, err := Parse(c.raw)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		blocks = append(blocks, p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := 1 + rng.IntN(3*len(blocks))
		idx := make([]int, n)
		batch := make([]*Block, n)
		for i := range idx {
			idx[i] = rng.IntN(len(blocks))
			batch[i] = blocks[idx[i]]
		}
		for i, err := range AdmitBatch(batch, testCommons, vectorTime, nil) {
			c := cases[idx[i]]
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("round %d: %s in a batch of %d: %v, want %v", round, c.name, n, err, c.want)
			}
		}
	}
	// Without a commons to match, a record of any commons is admitted.
	if _, err := Admit(cases[5].raw, cid.Undef, vectorTime, nil); err != nil {
		t.Errorf("Admit with no commons: %v", err)
	}
}

// Every sentinel has one code, and the code gives the sentinel back, also
// through a FieldError; an error wrapping none has no code.
func TestErrorCodes(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range []error{ErrTooLarge, ErrMalformed, ErrNonCanonical, ErrUnknownType, ErrMissing, ErrInvalid, ErrBadSignature, ErrFutureTime, ErrWrongCommons, ErrNoWork, ErrNoGenesis} {
		code := ErrorCode(fieldErr("body.title", e, "detail"))
		if code == "" || seen[code] || ErrorOf(code) != e {
			t.Errorf("%v: code %q (seen %v), back to %v", e, code, seen[code], ErrorOf(code))
		}
		seen[code] = true
	}
	if c := ErrorCode(errors.New("other")); c != "" {
		t.Errorf("unrelated error has code %q", c)
	}
	if ErrorOf("nonsense") != nil {
		t.Error("an unknown code gives an error")
	}
}
