package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

// The for-benefit association's records (§5.9–§5.13, §7.7): field rules,
// links, co-signatures, the rotation's successor, and admission only where
// the genesis sets policy.association.

func disputeRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Dispute{
		Subject: &Link{testOther}, Reason: "Reason", Under: Link{testCommons},
	}}
}

// participantDisputeRecord disputes testKey(3)'s conduct.
func participantDisputeRecord() *Record {
	p := testKey(3).Public()
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Dispute{
		Participant: &p, Reason: "Reason", Under: Link{testCommons},
	}}
}

func statementRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Statement{
		Dispute: Link{testOther}, Text: "Text",
	}}
}

func resolutionRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Resolution{
		Dispute: Link{testOther}, Outcome: OutcomeUphold, Effect: EffectWithdraw, Reason: "Reason", Under: Link{testCommons},
	}}
}

// certificateRecord certifies testKey(3) as a maintainer.
func certificateRecord() *Record {
	p := testKey(3).Public()
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Certificate{
		Participant: &p, Role: "maintainer", Expires: vectorTime + 1, Under: Link{testCommons},
	}}
}

// releaseCertificateRecord certifies a release holding testOther.
func releaseCertificateRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Certificate{
		Release: &Release{Name: "2026.12", Root: bytes.Repeat([]byte{0xab}, 32), Contributions: []Link{{testOther}}},
		Expires: vectorTime + 1, Under: Link{testCommons},
	}}
}

// rotationRecord hands testKey(9)'s identity on to testKey(8), without the
// successor's co-signature yet.
func rotationRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Rotation{
		Successor: testKey(8).Public(),
	}}
}

// sortedLinks returns n distinct record links sorted by CID bytes.
func sortedLinks(n int) []Link {
	ls := make([]Link, n)
	for i := range ls {
		ls[i] = Link{RecordCID([]byte(fmt.Sprintf("record %d", i)))}
	}
	slices.SortFunc(ls, func(a, b Link) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return ls
}

// evidenceURLs returns n distinct https URLs.
func evidenceURLs(n int) []string {
	us := make([]string, n)
	for i := range us {
		us[i] = fmt.Sprintf("https://example.org/evidence/%d", i)
	}
	return us
}

// sortedCids sorts CIDs by their bytes, as links are.
func sortedCids(cs ...cid.Cid) []cid.Cid {
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return cs
}

var cidV0 = func() cid.Cid {
	c, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	if err != nil {
		panic(err)
	}
	return c
}()

// evidenceCases are the rules of a dispute's or a statement's evidence
// (§5.9, §5.10), for a record built by rec with its evidence set.
func evidenceCases(rec func(f func(ev *[]string)) func() *Record) []validationCase {
	ev := func(us ...string) func() *Record { return rec(func(ev *[]string) { *ev = us }) }
	return []validationCase{
		{"evidence http", ev("http://example.org/a"), nil, ""},
		{"evidence https with path, query and fragment", ev("https://example.org/a/b?c=d#e"), nil, ""},
		{"evidence with a port and an IPv6 host", ev("https://example.org:8443/", "http://[::1]:8080/"), nil, ""},
		{"evidence with a non-ASCII path", ev("https://example.org/café"), nil, ""},
		{"evidence at limit", ev(evidenceURLs(MaxEvidence)...), nil, ""},
		{"evidence over limit", ev(evidenceURLs(MaxEvidence + 1)...), ErrTooLarge, "body.evidence"},
		{"evidence over limit, with bad URLs", ev(slices.Repeat([]string{"ftp://x"}, MaxEvidence+1)...), ErrTooLarge, "body.evidence"},
		{"evidence empty URL", ev("https://example.org/a", ""), ErrMissing, "body.evidence[1]"},
		{"evidence ftp", ev("ftp://example.org/a"), ErrInvalid, "body.evidence[0]"},
		{"evidence javascript", ev("javascript:alert(1)"), ErrInvalid, "body.evidence[0]"},
		{"evidence without scheme", ev("example.org/a"), ErrInvalid, "body.evidence[0]"},
		{"evidence upper-case scheme", ev("HTTPS://example.org/"), ErrInvalid, "body.evidence[0]"},
		{"evidence scheme only", ev("https://"), ErrInvalid, "body.evidence[0]"},
		{"evidence without host", ev("https:///a"), ErrInvalid, "body.evidence[0]"},
		{"evidence with a port and no host", ev("https://:443/"), ErrInvalid, "body.evidence[0]"},
		{"evidence with space", ev("https://example.org/a b"), ErrInvalid, "body.evidence[0]"},
		{"evidence with newline", ev("https://example.org/\n"), ErrInvalid, "body.evidence[0]"},
		{"evidence with NUL", ev("https://example.org/\x00"), ErrInvalid, "body.evidence[0]"},
		{"evidence with a right-to-left override", ev("https://example.org/\u202egpj.exe"), ErrInvalid, "body.evidence[0]"},
		{"evidence with a zero-width space in the host", ev("https://a.org", "https://exa\u200bmple.org/"), ErrInvalid, "body.evidence[1]"},
		{"evidence at the URL limit", ev("https://x/" + strings.Repeat("p", MaxURLLen-len("https://x/"))), nil, ""},
		{"evidence over the URL limit", ev("https://x/" + strings.Repeat("p", MaxURLLen+1-len("https://x/"))), ErrTooLarge, "body.evidence[0]"},
		{"evidence duplicate", ev("https://example.org/a", "https://example.org/b", "https://example.org/a"), ErrInvalid, "body.evidence[2]"},
		{"evidence differing in case only", ev("https://example.org/a", "https://example.org/A"), nil, ""},
		{"evidence duplicate after a bad URL", ev("ftp://x", "ftp://x"), ErrInvalid, "body.evidence[0]"},
		{"first bad evidence named", ev("https://a.org", "https://b.org", "ftp://c", ""), ErrInvalid, "body.evidence[2]"},
	}
}

func TestValidateDispute(t *testing.T) {
	d := func(f func(d *Dispute)) func() *Record {
		return func() *Record { r := disputeRecord(); f(r.Dispute()); return r }
	}
	pd := func(f func(d *Dispute)) func() *Record {
		return func() *Record { r := participantDisputeRecord(); f(r.Dispute()); return r }
	}
	participant, author := testKey(3).Public(), testKey(9).Public()
	cases := []validationCase{
		{"about a record", d(func(*Dispute) {}), nil, ""},
		{"about a participant", pd(func(*Dispute) {}), nil, ""},
		// Nothing in §5.9 keeps a key from disputing its own conduct.
		{"about its author", pd(func(d *Dispute) { d.Participant = &author }), nil, ""},
		{"about the commons' genesis", d(func(d *Dispute) { d.Subject = &Link{testCommons} }), nil, ""},
		{"neither subject nor participant", d(func(d *Dispute) { d.Subject = nil }), ErrMissing, "body.subject"},
		{"both subject and participant", d(func(d *Dispute) { d.Participant = &participant }), ErrInvalid, "body.participant"},
		{"nothing set", d(func(d *Dispute) { *d = Dispute{} }), ErrMissing, "body.subject"},
		{"subject raw", d(func(d *Dispute) { d.Subject = &Link{testBlob} }), ErrInvalid, "body.subject"},
		{"subject CIDv0", d(func(d *Dispute) { d.Subject = &Link{cidV0} }), ErrInvalid, "body.subject"},
		{"subject present but undefined", d(func(d *Dispute) { d.Subject = &Link{} }), ErrInvalid, "body.subject"},
		{"neither, and reason missing", d(func(d *Dispute) { d.Subject, d.Reason = nil, "" }), ErrMissing, "body.subject"},
		{"both, and under missing", d(func(d *Dispute) { d.Participant, d.Under = &participant, Link{} }), ErrInvalid, "body.participant"},
		{"subject raw and reason missing", d(func(d *Dispute) { d.Subject, d.Reason = &Link{testBlob}, "" }), ErrInvalid, "body.subject"},
		{"reason empty", d(func(d *Dispute) { d.Reason = "" }), ErrMissing, "body.reason"},
		{"reason blank", pd(func(d *Dispute) { d.Reason = " \t\n" }), ErrMissing, "body.reason"},
		{"reason at limit", d(func(d *Dispute) { d.Reason = strings.Repeat("r", MaxRationaleLen) }), nil, ""},
		{"reason over limit", d(func(d *Dispute) { d.Reason = strings.Repeat("r", MaxRationaleLen+1) }), ErrTooLarge, "body.reason"},
		{"reason with tab and newline", d(func(d *Dispute) { d.Reason = "a\tb\nc" }), nil, ""},
		{"reason with carriage return", d(func(d *Dispute) { d.Reason = "a\r\nb" }), ErrInvalid, "body.reason"},
		{"reason with control character", d(func(d *Dispute) { d.Reason = "a\x1bb" }), ErrInvalid, "body.reason"},
		{"reason with C1 control", d(func(d *Dispute) { d.Reason = "a\u0085b" }), ErrInvalid, "body.reason"},
		{"reason with a right-to-left override", d(func(d *Dispute) { d.Reason = "a\u202eb" }), ErrInvalid, "body.reason"},
		{"reason with a zero-width space", pd(func(d *Dispute) { d.Reason = "a\u200bb" }), ErrInvalid, "body.reason"},
		{"reason with a byte order mark", d(func(d *Dispute) { d.Reason = "\ufeffReason" }), ErrInvalid, "body.reason"},
		{"reason with a soft hyphen", d(func(d *Dispute) { d.Reason = "Rea\u00adson" }), ErrInvalid, "body.reason"},
		{"reason of a format character only", d(func(d *Dispute) { d.Reason = "\u200b" }), ErrInvalid, "body.reason"},
		{"reason with accents and a right-to-left script", d(func(d *Dispute) { d.Reason = "Copié de « שלום » — 5 €." }), nil, ""},
		{"reason bad and evidence bad", d(func(d *Dispute) { d.Reason, d.Evidence = "a\u202eb", []string{"ftp://x"} }), ErrInvalid, "body.reason"},
		{"evidence bad and under missing", d(func(d *Dispute) { d.Evidence, d.Under = []string{"ftp://x"}, Link{} }), ErrInvalid, "body.evidence[0]"},
		{"under undefined", d(func(d *Dispute) { d.Under = Link{} }), ErrMissing, "body.under"},
		{"about a participant, under undefined", pd(func(d *Dispute) { d.Under = Link{} }), ErrMissing, "body.under"},
		{"under raw", d(func(d *Dispute) { d.Under = Link{testBlob} }), ErrInvalid, "body.under"},
		{"under CIDv0", d(func(d *Dispute) { d.Under = Link{cidV0} }), ErrInvalid, "body.under"},
		{"under its subject", d(func(d *Dispute) { d.Under = *d.Subject }), nil, ""},
		{"without commons", func() *Record { r := disputeRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"commons is a raw CID", func() *Record { r := disputeRecord(); r.Commons = testBlob; return r }, ErrInvalid, "commons"},
		{"time zero", func() *Record { r := disputeRecord(); r.Time = 0; return r }, ErrMissing, "time"},
		{"cosigs on a dispute", func() *Record {
			r := disputeRecord()
			r.Cosigs = []Cosig{{Key: testKey(2).Public()}}
			return r
		}, ErrInvalid, "cosigs"},
	}
	cases = append(cases, evidenceCases(func(f func(*[]string)) func() *Record {
		return d(func(d *Dispute) { f(&d.Evidence) })
	})...)
	runValidation(t, cases)

	if ls, want := disputeRecord().Links(), sortedCids(testCommons, testOther); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
		t.Errorf("a dispute about a record links %v, want %v (under and subject, sorted)", ls, want)
	}
	if ls := participantDisputeRecord().Links(); len(ls) != 1 || !ls[0].Equals(testCommons) {
		t.Errorf("a dispute about a participant links %v, want [%s] (its under)", ls, testCommons)
	}
	r := disputeRecord()
	r.Dispute().Subject = &Link{testCommons}
	if ls := r.Links(); len(ls) != 1 || !ls[0].Equals(testCommons) {
		t.Errorf("a dispute about its own under links %v, want [%s] once", ls, testCommons)
	}
}

func TestValidateStatement(t *testing.T) {
	s := func(f func(s *Statement)) func() *Record {
		return func() *Record { r := statementRecord(); f(r.Statement()); return r }
	}
	cases := []validationCase{
		{"ok", s(func(*Statement) {}), nil, ""},
		{"with evidence", s(func(s *Statement) { s.Evidence = evidenceURLs(2) }), nil, ""},
		{"dispute undefined", s(func(s *Statement) { s.Dispute = Link{} }), ErrMissing, "body.dispute"},
		{"dispute raw", s(func(s *Statement) { s.Dispute = Link{testBlob} }), ErrInvalid, "body.dispute"},
		{"dispute CIDv0", s(func(s *Statement) { s.Dispute = Link{cidV0} }), ErrInvalid, "body.dispute"},
		{"dispute the commons", s(func(s *Statement) { s.Dispute = Link{testCommons} }), nil, ""},
		{"dispute undefined and text missing", s(func(s *Statement) { s.Dispute, s.Text = Link{}, "" }), ErrMissing, "body.dispute"},
		{"text empty", s(func(s *Statement) { s.Text = "" }), ErrMissing, "body.text"},
		{"text blank", s(func(s *Statement) { s.Text = "\n \t" }), ErrMissing, "body.text"},
		{"text at limit", s(func(s *Statement) { s.Text = strings.Repeat("t", MaxRationaleLen) }), nil, ""},
		{"text over limit", s(func(s *Statement) { s.Text = strings.Repeat("t", MaxRationaleLen+1) }), ErrTooLarge, "body.text"},
		{"text with tab and newline", s(func(s *Statement) { s.Text = "a\tb\nc" }), nil, ""},
		{"text with carriage return", s(func(s *Statement) { s.Text = "a\rb" }), ErrInvalid, "body.text"},
		{"text with control character", s(func(s *Statement) { s.Text = "a\x07b" }), ErrInvalid, "body.text"},
		{"text with a right-to-left override", s(func(s *Statement) { s.Text = "a\u202eb" }), ErrInvalid, "body.text"},
		{"text with a zero-width joiner", s(func(s *Statement) { s.Text = "a\u200db" }), ErrInvalid, "body.text"},
		{"text with a left-to-right mark", s(func(s *Statement) { s.Text = "a\u200eb" }), ErrInvalid, "body.text"},
		{"text with accents", s(func(s *Statement) { s.Text = "Je l’ai traduit moi-même — voici mes brouillons." }), nil, ""},
		{"text over limit and evidence bad", s(func(s *Statement) {
			s.Text, s.Evidence = strings.Repeat("t", MaxRationaleLen+1), []string{""}
		}), ErrTooLarge, "body.text"},
		{"without commons", func() *Record { r := statementRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"cosigs on a statement", func() *Record {
			r := statementRecord()
			r.Cosigs = []Cosig{{Key: testKey(2).Public()}}
			return r
		}, ErrInvalid, "cosigs"},
	}
	cases = append(cases, evidenceCases(func(f func(*[]string)) func() *Record {
		return s(func(s *Statement) { f(&s.Evidence) })
	})...)
	runValidation(t, cases)

	if ls := statementRecord().Links(); len(ls) != 1 || !ls[0].Equals(testOther) {
		t.Errorf("a statement links %v, want [%s] (its dispute)", ls, testOther)
	}
}

func TestValidateResolution(t *testing.T) {
	v := func(f func(v *Resolution)) func() *Record {
		return func() *Record { r := resolutionRecord(); f(r.Resolution()); return r }
	}
	dismiss := func(f func(v *Resolution)) func() *Record {
		return v(func(v *Resolution) { v.Outcome, v.Effect = OutcomeDismiss, ""; f(v) })
	}
	cosigned := func(f func(r *Record)) func() *Record {
		return func() *Record { r := resolutionRecord(); f(r); return r }
	}
	author := testKey(9).Public()
	runValidation(t, []validationCase{
		{"uphold, withdraw", v(func(*Resolution) {}), nil, ""},
		{"uphold, set-aside", v(func(v *Resolution) { v.Effect = EffectSetAside }), nil, ""},
		{"uphold, unmet", v(func(v *Resolution) { v.Effect = EffectUnmet }), nil, ""},
		{"uphold without effect", v(func(v *Resolution) { v.Effect = "" }), nil, ""},
		{"dismiss", dismiss(func(*Resolution) {}), nil, ""},
		{"dismiss with withdraw", dismiss(func(v *Resolution) { v.Effect = EffectWithdraw }), ErrInvalid, "body.effect"},
		{"dismiss with set-aside", dismiss(func(v *Resolution) { v.Effect = EffectSetAside }), ErrInvalid, "body.effect"},
		{"dismiss with unmet", dismiss(func(v *Resolution) { v.Effect = EffectUnmet }), ErrInvalid, "body.effect"},
		{"dismiss with an unknown effect", dismiss(func(v *Resolution) { v.Effect = "ban" }), ErrInvalid, "body.effect"},
		{"outcome empty", v(func(v *Resolution) { v.Outcome = "" }), ErrMissing, "body.outcome"},
		{"outcome empty, no effect", v(func(v *Resolution) { v.Outcome, v.Effect = "", "" }), ErrMissing, "body.outcome"},
		{"outcome upper case", v(func(v *Resolution) { v.Outcome = "Uphold" }), ErrInvalid, "body.outcome"},
		{"outcome upheld", v(func(v *Resolution) { v.Outcome = "upheld" }), ErrInvalid, "body.outcome"},
		{"outcome dismissed", dismiss(func(v *Resolution) { v.Outcome = "dismissed" }), ErrInvalid, "body.outcome"},
		{"outcome with trailing space", v(func(v *Resolution) { v.Outcome = "uphold " }), ErrInvalid, "body.outcome"},
		{"outcome unknown, effect unknown", v(func(v *Resolution) { v.Outcome, v.Effect = "settle", "ban" }), ErrInvalid, "body.outcome"},
		{"effect upper case", v(func(v *Resolution) { v.Effect = "Withdraw" }), ErrInvalid, "body.effect"},
		{"effect set_aside", v(func(v *Resolution) { v.Effect = "set_aside" }), ErrInvalid, "body.effect"},
		{"effect setaside", v(func(v *Resolution) { v.Effect = "setaside" }), ErrInvalid, "body.effect"},
		{"effect withdrawn", v(func(v *Resolution) { v.Effect = "withdrawn" }), ErrInvalid, "body.effect"},
		{"effect unknown", v(func(v *Resolution) { v.Effect = "ban" }), ErrInvalid, "body.effect"},
		{"effect bad and reason missing", v(func(v *Resolution) { v.Effect, v.Reason = "ban", "" }), ErrInvalid, "body.effect"},
		{"dispute undefined", v(func(v *Resolution) { v.Dispute = Link{} }), ErrMissing, "body.dispute"},
		{"dispute raw", v(func(v *Resolution) { v.Dispute = Link{testBlob} }), ErrInvalid, "body.dispute"},
		{"dispute CIDv0", v(func(v *Resolution) { v.Dispute = Link{cidV0} }), ErrInvalid, "body.dispute"},
		{"dispute undefined and outcome missing", v(func(v *Resolution) { v.Dispute, v.Outcome = Link{}, "" }), ErrMissing, "body.dispute"},
		{"reason empty", v(func(v *Resolution) { v.Reason = "" }), ErrMissing, "body.reason"},
		{"dismissal, reason empty", dismiss(func(v *Resolution) { v.Reason = "" }), ErrMissing, "body.reason"},
		{"reason blank", v(func(v *Resolution) { v.Reason = "  " }), ErrMissing, "body.reason"},
		{"reason at limit", v(func(v *Resolution) { v.Reason = strings.Repeat("r", MaxRationaleLen) }), nil, ""},
		{"reason over limit", v(func(v *Resolution) { v.Reason = strings.Repeat("r", MaxRationaleLen+1) }), ErrTooLarge, "body.reason"},
		{"reason with tab and newline", v(func(v *Resolution) { v.Reason = "a\tb\nc" }), nil, ""},
		{"reason with control character", v(func(v *Resolution) { v.Reason = "a\x1bb" }), ErrInvalid, "body.reason"},
		{"reason with a right-to-left override", v(func(v *Resolution) { v.Reason = "a\u202eb" }), ErrInvalid, "body.reason"},
		{"reason with a zero-width space", v(func(v *Resolution) { v.Reason = "a\u200bb" }), ErrInvalid, "body.reason"},
		{"reason with accents", v(func(v *Resolution) { v.Reason = "Plainte fondée — retirée." }), nil, ""},
		{"reason bad and replaces bad", v(func(v *Resolution) { v.Reason, v.Replaces = "", []Link{{testBlob}} }), ErrMissing, "body.reason"},
		{"replaces one", v(func(v *Resolution) { v.Replaces = sortedLinks(1) }), nil, ""},
		{"replaces at limit", v(func(v *Resolution) { v.Replaces = sortedLinks(MaxPrev) }), nil, ""},
		{"replaces over limit", v(func(v *Resolution) { v.Replaces = sortedLinks(MaxPrev + 1) }), ErrTooLarge, "body.replaces"},
		{"replaces unsorted", v(func(v *Resolution) { l := sortedLinks(2); v.Replaces = []Link{l[1], l[0]} }), ErrInvalid, "body.replaces"},
		{"replaces duplicate", v(func(v *Resolution) { l := sortedLinks(2); v.Replaces = []Link{l[0], l[1], l[1]} }), ErrInvalid, "body.replaces"},
		{"replaces raw", v(func(v *Resolution) { v.Replaces = []Link{{testBlob}} }), ErrInvalid, "body.replaces[0]"},
		{"replaces raw second", v(func(v *Resolution) { v.Replaces = []Link{sortedLinks(1)[0], {testBlob}} }), ErrInvalid, "body.replaces[1]"},
		{"replaces CIDv0", v(func(v *Resolution) { v.Replaces = []Link{{cidV0}} }), ErrInvalid, "body.replaces[0]"},
		{"replaces undefined", v(func(v *Resolution) { v.Replaces = []Link{{}} }), ErrInvalid, "body.replaces[0]"},
		// Whether a replaced record is a resolution of the same dispute is
		// the state's business (§12.12).
		{"replaces its dispute and under", v(func(v *Resolution) {
			v.Replaces = []Link{{sortedCids(testCommons, testOther)[0]}, {sortedCids(testCommons, testOther)[1]}}
		}), nil, ""},
		{"replaces bad and under missing", v(func(v *Resolution) { v.Replaces, v.Under = []Link{{testBlob}}, Link{} }), ErrInvalid, "body.replaces[0]"},
		{"under undefined", v(func(v *Resolution) { v.Under = Link{} }), ErrMissing, "body.under"},
		{"under raw", v(func(v *Resolution) { v.Under = Link{testBlob} }), ErrInvalid, "body.under"},
		{"under CIDv0", dismiss(func(v *Resolution) { v.Under = Link{cidV0} }), ErrInvalid, "body.under"},
		{"under its dispute", v(func(v *Resolution) { v.Under = v.Dispute }), nil, ""},
		{"without commons", func() *Record { r := resolutionRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"commons is a raw CID", func() *Record { r := resolutionRecord(); r.Commons = testBlob; return r }, ErrInvalid, "commons"},
		{"cosigs", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(2)[0]}, {Key: sortedKeys(2)[1]}} }), nil, ""},
		{"cosig by the author", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(1)[0]}, {Key: author}} }), ErrInvalid, "cosigs[1].key"},
		{"cosigs unsorted", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(3)[2]}, {Key: sortedKeys(3)[1]}} }), ErrInvalid, "cosigs"},
		{"cosigs duplicate", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(2)[1]}, {Key: sortedKeys(2)[1]}} }), ErrInvalid, "cosigs"},
		{"cosigs at the limit", cosigned(func(r *Record) {
			for _, k := range sortedKeys(MaxKeys) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
		}), nil, ""},
		{"cosigs over the limit", cosigned(func(r *Record) {
			for _, k := range sortedKeys(MaxKeys + 1) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
		}), ErrTooLarge, "cosigs"},
	})

	if ls, want := resolutionRecord().Links(), sortedCids(testCommons, testOther); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
		t.Errorf("a resolution links %v, want %v (dispute and under, sorted)", ls, want)
	}
	r := resolutionRecord()
	r.Resolution().Replaces = sortedLinks(3)
	want := []cid.Cid{testCommons, testOther}
	for _, l := range sortedLinks(3) {
		want = append(want, l.Cid)
	}
	if ls, want := r.Links(), sortedCids(want...); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
		t.Errorf("a resolution replacing three links %v, want %v (dispute, under and every replaces, sorted)", ls, want)
	}
	r.Resolution().Replaces, r.Resolution().Under = []Link{{testOther}}, Link{testOther}
	if ls := r.Links(); len(ls) != 1 || !ls[0].Equals(testOther) {
		t.Errorf("a resolution whose dispute, under and replaces are one record links %v, want [%s] once", ls, testOther)
	}
}

func TestValidateCertificate(t *testing.T) {
	c := func(f func(c *Certificate)) func() *Record {
		return func() *Record { r := certificateRecord(); f(r.Certificate()); return r }
	}
	rel := func(f func(c *Certificate)) func() *Record {
		return func() *Record { r := releaseCertificateRecord(); f(r.Certificate()); return r }
	}
	cosigned := func(f func(r *Record)) func() *Record {
		return func() *Record { r := releaseCertificateRecord(); f(r); return r }
	}
	participant, author := testKey(3).Public(), testKey(9).Public()
	runValidation(t, []validationCase{
		{"participant ok", c(func(*Certificate) {}), nil, ""},
		{"release ok", rel(func(*Certificate) {}), nil, ""},
		{"participant its author", c(func(c *Certificate) { c.Participant = &author }), nil, ""},
		{"partner", c(func(c *Certificate) { c.Role = "partner" }), nil, ""},
		{"neither participant nor release", c(func(c *Certificate) { c.Participant, c.Role = nil, "" }), ErrMissing, "body.participant"},
		{"role without participant", c(func(c *Certificate) { c.Participant = nil }), ErrMissing, "body.participant"},
		{"nothing set", c(func(c *Certificate) { *c = Certificate{} }), ErrMissing, "body.participant"},
		{"both participant and release", rel(func(c *Certificate) { c.Participant = &participant }), ErrInvalid, "body.release"},
		{"both, with a role", rel(func(c *Certificate) { c.Participant, c.Role = &participant, "maintainer" }), ErrInvalid, "body.release"},
		{"participant without role", c(func(c *Certificate) { c.Role = "" }), ErrMissing, "body.role"},
		{"participant without role, expires zero", c(func(c *Certificate) { c.Role, c.Expires = "", 0 }), ErrMissing, "body.role"},
		{"role upper case", c(func(c *Certificate) { c.Role = "Maintainer" }), ErrInvalid, "body.role"},
		{"role with space", c(func(c *Certificate) { c.Role = "core maintainer" }), ErrInvalid, "body.role"},
		{"role with slash", c(func(c *Certificate) { c.Role = "a/b" }), ErrInvalid, "body.role"},
		{"role not ASCII", c(func(c *Certificate) { c.Role = "mainteneur-é" }), ErrInvalid, "body.role"},
		{"role with a zero-width space", c(func(c *Certificate) { c.Role = "main\u200btainer" }), ErrInvalid, "body.role"},
		{"role blank", c(func(c *Certificate) { c.Role = " " }), ErrInvalid, "body.role"},
		{"role punctuation", c(func(c *Certificate) { c.Role = "a-b_c.d9" }), nil, ""},
		{"role at limit", c(func(c *Certificate) { c.Role = strings.Repeat("r", MaxKindLen) }), nil, ""},
		{"role over limit", c(func(c *Certificate) { c.Role = strings.Repeat("r", MaxKindLen+1) }), ErrInvalid, "body.role"},
		{"role bad and expires zero", c(func(c *Certificate) { c.Role, c.Expires = "R", 0 }), ErrInvalid, "body.role"},
		{"release with a role", rel(func(c *Certificate) { c.Role = "maintainer" }), ErrInvalid, "body.role"},
		{"release with a role and no name", rel(func(c *Certificate) { c.Role, c.Release.Name = "maintainer", "" }), ErrInvalid, "body.role"},
		{"release empty", rel(func(c *Certificate) { c.Release = &Release{} }), ErrMissing, "body.release.name"},
		{"release name empty", rel(func(c *Certificate) { c.Release.Name = "" }), ErrMissing, "body.release.name"},
		{"release name blank", rel(func(c *Certificate) { c.Release.Name = "\t " }), ErrMissing, "body.release.name"},
		{"release name at limit", rel(func(c *Certificate) { c.Release.Name = strings.Repeat("n", MaxNameLen) }), nil, ""},
		{"release name over limit", rel(func(c *Certificate) { c.Release.Name = strings.Repeat("n", MaxNameLen+1) }), ErrTooLarge, "body.release.name"},
		{"release name with control character", rel(func(c *Certificate) { c.Release.Name = "2026\x0012" }), ErrInvalid, "body.release.name"},
		{"release name with a right-to-left override", rel(func(c *Certificate) { c.Release.Name = "2026.\u202e21" }), ErrInvalid, "body.release.name"},
		{"release name with a zero-width space", rel(func(c *Certificate) { c.Release.Name = "2026\u200b.12" }), ErrInvalid, "body.release.name"},
		{"release name with accents", rel(func(c *Certificate) { c.Release.Name = "Édition d’hiver 2026" }), nil, ""},
		{"release name bad and root bad", rel(func(c *Certificate) { c.Release.Name, c.Release.Root = "", nil }), ErrMissing, "body.release.name"},
		{"release root missing", rel(func(c *Certificate) { c.Release.Root = nil }), ErrMissing, "body.release.root"},
		{"release root of 31 bytes", rel(func(c *Certificate) { c.Release.Root = make([]byte, 31) }), ErrInvalid, "body.release.root"},
		{"release root of 33 bytes", rel(func(c *Certificate) { c.Release.Root = make([]byte, 33) }), ErrInvalid, "body.release.root"},
		{"release root of 64 bytes", rel(func(c *Certificate) { c.Release.Root = make([]byte, 64) }), ErrInvalid, "body.release.root"},
		{"release root of zeros", rel(func(c *Certificate) { c.Release.Root = make([]byte, 32) }), nil, ""},
		{"release root bad and contributions missing", rel(func(c *Certificate) { c.Release.Root, c.Release.Contributions = []byte{1}, nil }), ErrInvalid, "body.release.root"},
		{"release contributions missing", rel(func(c *Certificate) { c.Release.Contributions = nil }), ErrMissing, "body.release.contributions"},
		{"release contributions empty", rel(func(c *Certificate) { c.Release.Contributions = []Link{} }), ErrMissing, "body.release.contributions"},
		// Each contribution is in the body and in links: MaxRelease of them
		// still fit a record.
		{"release contributions at limit", rel(func(c *Certificate) { c.Release.Contributions = sortedLinks(MaxRelease) }), nil, ""},
		{"release contributions over limit", rel(func(c *Certificate) { c.Release.Contributions = sortedLinks(MaxRelease + 1) }), ErrTooLarge, "body.release.contributions"},
		{"release contributions unsorted", rel(func(c *Certificate) { l := sortedLinks(3); c.Release.Contributions = []Link{l[0], l[2], l[1]} }), ErrInvalid, "body.release.contributions"},
		{"release contributions duplicate", rel(func(c *Certificate) { l := sortedLinks(2); c.Release.Contributions = []Link{l[0], l[0], l[1]} }), ErrInvalid, "body.release.contributions"},
		{"release contribution raw", rel(func(c *Certificate) { c.Release.Contributions = []Link{{testBlob}} }), ErrInvalid, "body.release.contributions[0]"},
		{"release contribution raw third", rel(func(c *Certificate) {
			c.Release.Contributions = append(sortedLinks(2), Link{testBlob})
		}), ErrInvalid, "body.release.contributions[2]"},
		{"release contribution CIDv0", rel(func(c *Certificate) { c.Release.Contributions = []Link{{cidV0}} }), ErrInvalid, "body.release.contributions[0]"},
		{"release contribution undefined", rel(func(c *Certificate) { c.Release.Contributions = []Link{{}} }), ErrInvalid, "body.release.contributions[0]"},
		{"release contributions bad and expires zero", rel(func(c *Certificate) { c.Release.Contributions, c.Expires = nil, 0 }), ErrMissing, "body.release.contributions"},
		{"release of its under", rel(func(c *Certificate) { c.Release.Contributions = []Link{c.Under} }), nil, ""},
		{"expires zero", c(func(c *Certificate) { c.Expires = 0 }), ErrMissing, "body.expires"},
		{"release, expires zero", rel(func(c *Certificate) { c.Expires = 0 }), ErrMissing, "body.expires"},
		{"expires MaxMillis", c(func(c *Certificate) { c.Expires = MaxMillis }), nil, ""},
		{"expires 9999-12-31T23:59:59.999Z", rel(func(c *Certificate) { c.Expires = 253402300799999 }), nil, ""},
		{"expires MaxMillis+1", c(func(c *Certificate) { c.Expires = MaxMillis + 1 }), ErrInvalid, "body.expires"},
		{"release, expires MaxMillis+1", rel(func(c *Certificate) { c.Expires = MaxMillis + 1 }), ErrInvalid, "body.expires"},
		{"expires 2^64-1", c(func(c *Certificate) { c.Expires = 1<<64 - 1 }), ErrInvalid, "body.expires"},
		// Whether a certificate holds at a moment is the reader's clock's
		// business (§12.13): one that expired before it was made is valid.
		{"expires 1, before its time", c(func(c *Certificate) { c.Expires = 1 }), nil, ""},
		{"expires zero and note bad", c(func(c *Certificate) { c.Expires, c.Note = 0, "a\u202eb" }), ErrMissing, "body.expires"},
		{"with note", c(func(c *Certificate) { c.Note = "Maintains\tthe guide.\n" }), nil, ""},
		{"note at limit", c(func(c *Certificate) { c.Note = strings.Repeat("n", MaxAboutLen) }), nil, ""},
		{"note over limit", rel(func(c *Certificate) { c.Note = strings.Repeat("n", MaxAboutLen+1) }), ErrTooLarge, "body.note"},
		{"note blank", c(func(c *Certificate) { c.Note = " " }), nil, ""},
		{"note with control character", c(func(c *Certificate) { c.Note = "a\x1bb" }), ErrInvalid, "body.note"},
		{"note with carriage return", c(func(c *Certificate) { c.Note = "a\rb" }), ErrInvalid, "body.note"},
		{"note with a right-to-left override", c(func(c *Certificate) { c.Note = "a\u202eb" }), ErrInvalid, "body.note"},
		{"note with a zero-width space", rel(func(c *Certificate) { c.Note = "a\u200bb" }), ErrInvalid, "body.note"},
		{"note with accents", c(func(c *Certificate) { c.Note = "Mainteneuse du guide — 2026." }), nil, ""},
		{"note bad and under missing", c(func(c *Certificate) { c.Note, c.Under = "a\u200bb", Link{} }), ErrInvalid, "body.note"},
		{"under undefined", c(func(c *Certificate) { c.Under = Link{} }), ErrMissing, "body.under"},
		{"release, under undefined", rel(func(c *Certificate) { c.Under = Link{} }), ErrMissing, "body.under"},
		{"under raw", c(func(c *Certificate) { c.Under = Link{testBlob} }), ErrInvalid, "body.under"},
		{"under CIDv0", rel(func(c *Certificate) { c.Under = Link{cidV0} }), ErrInvalid, "body.under"},
		{"without commons", func() *Record { r := certificateRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"commons is a raw CID", func() *Record { r := releaseCertificateRecord(); r.Commons = testBlob; return r }, ErrInvalid, "commons"},
		{"cosigs", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(2)[0]}, {Key: sortedKeys(2)[1]}} }), nil, ""},
		{"cosig by the author", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: author}} }), ErrInvalid, "cosigs[0].key"},
		{"cosigs unsorted", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(3)[2]}, {Key: sortedKeys(3)[1]}} }), ErrInvalid, "cosigs"},
		{"cosigs duplicate", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(2)[1]}, {Key: sortedKeys(2)[1]}} }), ErrInvalid, "cosigs"},
		{"cosigs over the limit", cosigned(func(r *Record) {
			for _, k := range sortedKeys(MaxKeys + 1) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
		}), ErrTooLarge, "cosigs"},
	})

	if ls := certificateRecord().Links(); len(ls) != 1 || !ls[0].Equals(testCommons) {
		t.Errorf("a participant's certificate links %v, want [%s] (its under)", ls, testCommons)
	}
	if ls, want := releaseCertificateRecord().Links(), sortedCids(testCommons, testOther); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
		t.Errorf("a release certificate links %v, want %v (under and the contribution, sorted)", ls, want)
	}
	r := releaseCertificateRecord()
	r.Certificate().Release.Contributions = sortedLinks(5)
	want := []cid.Cid{testCommons}
	for _, l := range sortedLinks(5) {
		want = append(want, l.Cid)
	}
	if ls, want := r.Links(), sortedCids(want...); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
		t.Errorf("a release of five contributions links %v, want %v", ls, want)
	}
	r.Certificate().Release.Contributions = []Link{{testCommons}}
	if ls := r.Links(); len(ls) != 1 || !ls[0].Equals(testCommons) {
		t.Errorf("a release of its own under links %v, want [%s] once", ls, testCommons)
	}
}

// TestValidateRotation checks a rotation's rules on the write path
// (Encode), where the successor's co-signature may still be missing.
func TestValidateRotation(t *testing.T) {
	author, successor := testKey(9).Public(), testKey(8).Public()
	rot := func(f func(r *Record)) func() *Record {
		return func() *Record { r := rotationRecord(); f(r); return r }
	}
	lo, hi := successor, testKey(7).Public()
	if lo.Compare(hi) > 0 {
		lo, hi = hi, lo
	}
	runValidation(t, []validationCase{
		{"without the successor's co-signature yet", rot(func(*Record) {}), nil, ""},
		{"co-signed by the successor", rot(func(r *Record) { r.Cosigs = []Cosig{{Key: successor}} }), nil, ""},
		{"successor its author", rot(func(r *Record) { r.Rotation().Successor = author }), ErrInvalid, "body.successor"},
		{"successor its author, co-signed by another key", rot(func(r *Record) {
			r.Rotation().Successor, r.Cosigs = author, []Cosig{{Key: successor}}
		}), ErrInvalid, "body.successor"},
		{"co-signed by another key", rot(func(r *Record) { r.Cosigs = []Cosig{{Key: testKey(7).Public()}} }), ErrInvalid, "cosigs"},
		{"co-signed by the successor and another key", rot(func(r *Record) { r.Cosigs = []Cosig{{Key: lo}, {Key: hi}} }), ErrInvalid, "cosigs"},
		{"co-signed by the successor twice", rot(func(r *Record) { r.Cosigs = []Cosig{{Key: successor}, {Key: successor}} }), ErrInvalid, "cosigs"},
		{"co-signed by its author", rot(func(r *Record) { r.Cosigs = []Cosig{{Key: author}} }), ErrInvalid, "cosigs[0].key"},
		{"co-signed by many keys", rot(func(r *Record) {
			for _, k := range sortedKeys(3) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
		}), ErrInvalid, "cosigs"},
		{"without commons", rot(func(r *Record) { r.Commons = cid.Undef }), ErrMissing, "commons"},
		{"commons is a raw CID", rot(func(r *Record) { r.Commons = testBlob }), ErrInvalid, "commons"},
		{"time zero", rot(func(r *Record) { r.Time = 0 }), ErrMissing, "time"},
	})
	if ls := rotationRecord().Links(); len(ls) != 0 {
		t.Errorf("a rotation links %v, want nothing", ls)
	}
}

// TestRotation checks a rotation from signing to parsing: the author signs
// it before its successor co-signs; Parse and Validate take it only with
// exactly that one co-signature.
func TestRotation(t *testing.T) {
	author, successor, other := testKey(9), testKey(8), testKey(7)
	r := rotationRecord()
	if err := Sign(r, author); err != nil {
		t.Fatalf("Sign before the successor co-signs: %v", err)
	}
	draft, err := NewBlock(r)
	if err != nil {
		t.Fatalf("NewBlock before the successor co-signs: %v", err)
	}
	_, err = Parse(draft.Raw)
	checkFieldErr(t, err, ErrMissing, "cosigs")
	_, err = Validate(draft.Raw)
	checkFieldErr(t, err, ErrMissing, "cosigs")
	_, err = Admit(draft.Raw, cid.Undef, vectorTime, nil)
	checkFieldErr(t, err, ErrMissing, "cosigs")

	if err := Cosign(r, successor); err != nil {
		t.Fatalf("Cosign by the successor: %v", err)
	}
	whole, err := NewBlock(r)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Validate(whole.Raw)
	if err != nil {
		t.Fatalf("Validate of a co-signed rotation: %v", err)
	}
	if got := pb.Record.Signers(); len(got) != 2 || got[0] != author.Public() || got[1] != successor.Public() {
		t.Errorf("Signers = %v, want the author then the successor", got)
	}
	if pb.Record.Rotation() == nil || pb.Record.Rotation().Successor != successor.Public() {
		t.Errorf("Rotation() = %+v", pb.Record.Rotation())
	}
	checkFieldErr(t, Cosign(r, successor), ErrInvalid, "cosigs")
	checkFieldErr(t, Cosign(r, author), ErrInvalid, "cosigs")
	if len(r.Cosigs) != 1 {
		t.Fatalf("cosigs %v after refused co-signings, want the successor's only", r.Cosigs)
	}
	// Another key's co-signature: whatever Cosign says, the record it
	// leaves does not encode.
	o := rotationRecord()
	if err := Sign(o, author); err != nil {
		t.Fatal(err)
	}
	if err := Cosign(o, other); err == nil {
		_, err = NewBlock(o)
		checkFieldErr(t, err, ErrInvalid, "cosigs")
	} else {
		checkFieldErr(t, err, ErrInvalid, "cosigs")
	}
	// Re-signing clears the co-signature: it covered the old bytes.
	r.Time++
	if err := Sign(r, author); err != nil || r.Cosigs != nil {
		t.Fatalf("Sign: %v, cosigs %v", err, r.Cosigs)
	}
	// A rotation to its own author is refused on every path.
	self := rotationRecord()
	self.Rotation().Successor = author.Public()
	checkFieldErr(t, Sign(self, author), ErrInvalid, "body.successor")
	raw := signUnchecked(t, self, author)
	_, err = Parse(raw)
	checkFieldErr(t, err, ErrInvalid, "body.successor")

	// At the CBOR level, from the whole rotation.
	env := mustDecode(whole.Raw)
	cosigsOf := func(cs ...Cosig) []byte {
		b, err := encMode.Marshal(cs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := pb.Record.Cosigs[0]
	authorKey, successorKey := author.Public(), successor.Public()
	otherSig := Cosig{Key: other.Public(), Sig: good.Sig}
	pair := []Cosig{good, otherSig}
	slices.SortFunc(pair, func(a, b Cosig) int { return a.Key.Compare(b.Key) })
	for _, tc := range []struct {
		name  string
		env   cborMap
		err   error
		field string
	}{
		{"without cosigs", env.del("cosigs"), ErrMissing, "cosigs"},
		{"with empty cosigs", env.set("cosigs", cborHead(4, 0)), ErrMissing, "cosigs"},
		{"co-signed by another key", env.set("cosigs", cosigsOf(otherSig)), ErrInvalid, "cosigs"},
		{"co-signed by the successor and another key", env.set("cosigs", cosigsOf(pair...)), ErrInvalid, "cosigs"},
		{"co-signed by its author", env.set("cosigs", cosigsOf(Cosig{Key: author.Public(), Sig: good.Sig})), ErrInvalid, "cosigs[0].key"},
		{"successor its author", env.set("body", cborMap{}.set("successor", cborBytes(authorKey[:])).encode()), ErrInvalid, "body.successor"},
		{"with links", env.set("links", append(cborHead(4, 1), cborLink(testOther, true)...)), ErrInvalid, "links"},
		{"successor of 31 bytes", env.set("body", cborMap{}.set("successor", cborBytes(make([]byte, 31))).encode()), ErrMalformed, "body"},
		{"successor as text", env.set("body", cborMap{}.set("successor", cborText(successor.Public().String())).encode()), ErrMalformed, "body"},
		{"unknown body field", env.set("body", cborMap{}.set("successor", cborBytes(successorKey[:])).set("note", cborText("n")).encode()), ErrMalformed, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.env.encode())
			checkFieldErr(t, err, tc.err, tc.field)
		})
	}
	// A body without its successor is refused, whatever the reason given.
	if _, err := Parse(env.set("body", cborMap{}.encode()).encode()); err == nil || !Permanent(err) {
		t.Errorf("a rotation without successor: %v; want it refused", err)
	}
	// The successor's co-signature is verified as any other.
	bad := *pb.Record
	bad.Cosigs = slices.Clone(pb.Record.Cosigs)
	bad.Cosigs[0].Sig[9] ^= 1
	bb, err := NewBlock(&bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(bb.Raw); err != nil {
		t.Fatalf("Parse of a rotation with a bad co-signature: %v (signatures are Validate's)", err)
	}
	_, err = Validate(bb.Raw)
	checkFieldErr(t, err, ErrBadSignature, "cosigs[0].sig")
	errs := VerifyBatch([]*Block{pb, bb, pb})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("VerifyBatch: %v", errs)
	}
	checkFieldErr(t, errs[1], ErrBadSignature, "cosigs[0].sig")
	// The successor signing another rotation does not co-sign this one.
	r2 := rotationRecord()
	r2.Time++
	if err := Sign(r2, author); err != nil {
		t.Fatal(err)
	}
	if err := Cosign(r2, successor); err != nil {
		t.Fatal(err)
	}
	stale := *pb.Record
	stale.Cosigs = slices.Clone(r2.Cosigs)
	sb, err := NewBlock(&stale)
	if err != nil {
		t.Fatal(err)
	}
	checkFieldErr(t, sb.Verify(), ErrBadSignature, "cosigs[0].sig")
}

// TestCosignAssociation checks that resolutions and certificates are
// co-signed as manifests are, and that disputes and statements are not.
func TestCosignAssociation(t *testing.T) {
	author, c1, c2 := testKey(40), testKey(41), testKey(42)
	var whole *Block
	for _, r := range []*Record{resolutionRecord(), certificateRecord(), releaseCertificateRecord()} {
		t.Run(string(r.Type()), func(t *testing.T) {
			if err := Sign(r, author); err != nil {
				t.Fatal(err)
			}
			for _, k := range []PrivateKey{c2, c1} {
				if err := Cosign(r, k); err != nil {
					t.Fatalf("Cosign of a %s: %v", r.Type(), err)
				}
			}
			if !slices.IsSortedFunc(r.Cosigs, func(a, b Cosig) int { return a.Key.Compare(b.Key) }) || len(r.Cosigs) != 2 {
				t.Fatalf("cosigs not sorted: %v", r.Cosigs)
			}
			b, err := NewBlock(r)
			if err != nil {
				t.Fatal(err)
			}
			pb, err := Validate(b.Raw)
			if err != nil {
				t.Fatalf("Validate of a co-signed %s: %v", r.Type(), err)
			}
			if got := pb.Record.Signers(); len(got) != 3 || got[0] != author.Public() || !slices.Contains(got, c1.Public()) || !slices.Contains(got, c2.Public()) {
				t.Errorf("Signers = %v", got)
			}
			checkFieldErr(t, Cosign(r, c1), ErrInvalid, "cosigs")
			checkFieldErr(t, Cosign(r, author), ErrInvalid, "cosigs")
			for i := range pb.Record.Cosigs {
				bad := *pb.Record
				bad.Cosigs = slices.Clone(pb.Record.Cosigs)
				bad.Cosigs[i].Sig[9] ^= 1
				bb, err := NewBlock(&bad)
				if err != nil {
					t.Fatal(err)
				}
				field := fmt.Sprintf("cosigs[%d].sig", i)
				_, err = Validate(bb.Raw)
				checkFieldErr(t, err, ErrBadSignature, field)
				errs := VerifyBatch([]*Block{pb, bb, pb})
				if errs[0] != nil || errs[2] != nil {
					t.Fatalf("VerifyBatch: %v", errs)
				}
				checkFieldErr(t, errs[1], ErrBadSignature, field)
			}
			whole = pb
		})
	}
	if whole == nil {
		t.Fatal("no co-signed record")
	}
	// Neither a dispute nor a statement is co-signed.
	for _, o := range []*Record{disputeRecord(), participantDisputeRecord(), statementRecord()} {
		if err := Sign(o, testKey(9)); err != nil {
			t.Fatal(err)
		}
		checkFieldErr(t, Cosign(o, c1), ErrInvalid, "cosigs")
		if o.Cosigs != nil {
			t.Errorf("Cosign of a %s left cosigs %v", o.Type(), o.Cosigs)
		}
	}
	// Nor do they take co-signatures at the CBOR level.
	cosigs := mustDecode(whole.Raw).get("cosigs")
	for _, o := range []*Record{disputeRecord(), participantDisputeRecord(), statementRecord()} {
		ob := sealed(t, o, testKey(9))
		_, err := Parse(mustDecode(ob.Raw).set("cosigs", cosigs).encode())
		checkFieldErr(t, err, ErrInvalid, "cosigs")
	}

	for _, c := range []struct {
		t    Type
		want bool
	}{
		{TypeManifest, true}, {TypeContribution, false}, {TypeReview, false},
		{TypeProfile, false}, {TypeSponsorship, false}, {TypePledge, false}, {TypeAcknowledgement, true},
		{TypeDispute, false}, {TypeStatement, false}, {TypeResolution, true}, {TypeCertificate, true}, {TypeRotation, true},
		{Type("bounty"), false},
	} {
		if got := Cosigned(c.t); got != c.want {
			t.Errorf("Cosigned(%s) = %v, want %v", c.t, got, c.want)
		}
	}
}

// TestParseAssociationLinks checks, through Parse, that each of the
// association's records must list exactly the links §4.1 derives.
func TestParseAssociationLinks(t *testing.T) {
	k, successor := testKey(9), testKey(8)
	seal := func(r *Record) cborMap {
		t.Helper()
		if err := Sign(r, k); err != nil {
			t.Fatal(err)
		}
		if r.Rotation() != nil {
			if err := Cosign(r, successor); err != nil {
				t.Fatal(err)
			}
		}
		raw, _, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(raw); err != nil {
			t.Fatalf("Parse of the unedited %s: %v", r.Type(), err)
		}
		return mustDecode(raw)
	}
	links := func(cs ...cid.Cid) []byte {
		out := cborHead(4, uint64(len(cs)))
		for _, c := range cs {
			out = append(out, cborLink(c, true)...)
		}
		return out
	}
	lo, hi := testOther, testCommons
	if bytes.Compare(lo.Bytes(), hi.Bytes()) > 0 {
		lo, hi = hi, lo
	}
	third := RecordCID([]byte("third"))
	three := sortedCids(testCommons, testOther, third)

	dis, disP, sta := seal(disputeRecord()), seal(participantDisputeRecord()), seal(statementRecord())
	self := disputeRecord()
	self.Dispute().Subject = &Link{testCommons}
	disSelf := seal(self)
	res := seal(resolutionRecord())
	rep := resolutionRecord()
	rep.Resolution().Replaces = []Link{{third}}
	resRep := seal(rep)
	cer, rel, rot := seal(certificateRecord()), seal(releaseCertificateRecord()), seal(rotationRecord())
	for _, c := range []struct {
		name string
		env  cborMap
		want []byte
	}{
		{"dispute about a record", dis, links(lo, hi)},
		{"dispute about a participant", disP, links(testCommons)},
		{"dispute about its under", disSelf, links(testCommons)},
		{"statement", sta, links(testOther)},
		{"resolution", res, links(lo, hi)},
		{"resolution replacing another", resRep, links(three...)},
		{"participant's certificate", cer, links(testCommons)},
		{"release certificate", rel, links(lo, hi)},
		{"rotation", rot, nil},
	} {
		if got := c.env.get("links"); !bytes.Equal(got, c.want) {
			t.Errorf("%s: links %x, want %x", c.name, got, c.want)
		}
	}

	for _, tc := range []struct {
		name string
		env  cborMap
	}{
		{"dispute without links", dis.del("links")},
		{"dispute with empty links", dis.set("links", links())},
		{"dispute linking its under only", dis.set("links", links(testCommons))},
		{"dispute linking its subject only", dis.set("links", links(testOther))},
		{"dispute, links unsorted", dis.set("links", links(hi, lo))},
		{"dispute, a link twice", dis.set("links", links(lo, lo, hi))},
		{"dispute, links with a third record", dis.set("links", links(three...))},
		{"dispute, links with a blob", dis.set("links", links(lo, hi, testBlob))},
		{"dispute linking its subject as a raw CID", dis.set("links", links(sortedCids(testCommons, cid.NewCidV1(cid.Raw, testOther.Hash()))...))},
		{"dispute about a participant without links", disP.del("links")},
		{"dispute about a participant linking a subject", disP.set("links", links(lo, hi))},
		{"dispute about its under linking it twice", disSelf.set("links", links(testCommons, testCommons))},
		{"statement without links", sta.del("links")},
		{"statement linking another record", sta.set("links", links(testCommons))},
		{"statement linking its dispute and another", sta.set("links", links(lo, hi))},
		{"statement linking its dispute twice", sta.set("links", links(testOther, testOther))},
		{"resolution without links", res.del("links")},
		{"resolution linking its dispute only", res.set("links", links(testOther))},
		{"resolution linking its under only", res.set("links", links(testCommons))},
		{"resolution, links unsorted", res.set("links", links(hi, lo))},
		{"resolution with a link it does not replace", res.set("links", links(three...))},
		{"resolution replacing another, without it", resRep.set("links", links(lo, hi))},
		{"resolution replacing another, linking it only", resRep.set("links", links(third))},
		{"resolution replacing another, links unsorted", resRep.set("links", links(three[2], three[1], three[0]))},
		{"participant's certificate without links", cer.del("links")},
		{"participant's certificate linking a contribution", cer.set("links", links(lo, hi))},
		{"release certificate without links", rel.del("links")},
		{"release certificate linking its under only", rel.set("links", links(testCommons))},
		{"release certificate linking its contribution only", rel.set("links", links(testOther))},
		{"release certificate, links unsorted", rel.set("links", links(hi, lo))},
		{"release certificate, links with a third record", rel.set("links", links(three...))},
		{"rotation with links", rot.set("links", links(testOther))},
		{"rotation linking its commons", rot.set("links", links(testCommons))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.env.encode())
			checkFieldErr(t, err, ErrInvalid, "links")
		})
	}
}

// TestParseAssociationNamesBodyField checks, through Parse, that an
// association record lacking a link it must hold is reported under that
// body field and not as a links mismatch.
func TestParseAssociationNamesBodyField(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 3
	for _, tc := range []struct {
		name, field string
		body        []byte
	}{
		{"dispute without under", "body.under", mustEncode(t, map[string]any{"subject": Link{testOther}, "reason": "r"})},
		{"dispute about a participant without under", "body.under", mustEncode(t, map[string]any{"participant": key, "reason": "r"})},
		{"dispute without subject or participant", "body.subject", mustEncode(t, map[string]any{"reason": "r", "under": Link{testCommons}})},
		{"dispute without reason", "body.reason", mustEncode(t, map[string]any{"subject": Link{testOther}, "under": Link{testCommons}})},
		{"statement without dispute", "body.dispute", mustEncode(t, map[string]any{"text": "t"})},
		{"statement without text", "body.text", mustEncode(t, map[string]any{"dispute": Link{testOther}})},
		{"resolution without dispute", "body.dispute", mustEncode(t, map[string]any{"outcome": "dismiss", "reason": "r", "under": Link{testCommons}})},
		{"resolution without outcome", "body.outcome", mustEncode(t, map[string]any{"dispute": Link{testOther}, "reason": "r", "under": Link{testCommons}})},
		{"resolution without under", "body.under", mustEncode(t, map[string]any{"dispute": Link{testOther}, "outcome": "dismiss", "reason": "r"})},
		{"certificate without under", "body.under", mustEncode(t, map[string]any{"participant": key, "role": "maintainer", "expires": 1})},
		{"certificate without participant or release", "body.participant", mustEncode(t, map[string]any{"expires": 1, "under": Link{testCommons}})},
		{"certificate without role", "body.role", mustEncode(t, map[string]any{"participant": key, "expires": 1, "under": Link{testCommons}})},
		{"certificate without expires", "body.expires", mustEncode(t, map[string]any{"participant": key, "role": "maintainer", "under": Link{testCommons}})},
		{"certificate of a release without contributions", "body.release.contributions", mustEncode(t, map[string]any{
			"release": map[string]any{"name": "n", "root": key}, "expires": 1, "under": Link{testCommons},
		})},
		{"certificate of a release without name", "body.release.name", mustEncode(t, map[string]any{
			"release": map[string]any{"root": key, "contributions": []Link{{testOther}}}, "expires": 1, "under": Link{testCommons},
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, _, _ := strings.Cut(tc.name, " ")
			env := cborMap{}.set("type", cborText(typ)).set("commons", cborLink(testCommons, true)).
				set("author", cborBytes(make([]byte, 32))).set("time", []byte{0x01}).
				set("body", tc.body).set("sig", cborBytes(make([]byte, 64)))
			_, err := Parse(env.encode())
			checkFieldErr(t, err, ErrMissing, tc.field)
		})
	}
}

// TestParseAssociationTypes checks that the association's type names are
// matched exactly, and that a body is read as its type's.
func TestParseAssociationTypes(t *testing.T) {
	b := sealed(t, disputeRecord(), testKey(9))
	env := mustDecode(b.Raw)
	for _, typ := range []string{
		"Dispute", "disputes", "dispute ", "complaint", "Statement", "statements", "Resolution", "resolutions",
		"decision", "Certificate", "certificates", "cert", "Rotation", "rotate", "rotations", "association",
	} {
		t.Run(typ, func(t *testing.T) {
			_, err := Parse(env.set("type", cborText(typ)).encode())
			checkFieldErr(t, err, ErrUnknownType, "type")
		})
	}
	// A dispute's body is no statement's, resolution's, certificate's or
	// rotation's.
	for _, typ := range []Type{TypeStatement, TypeResolution, TypeCertificate, TypeRotation} {
		_, err := Parse(env.set("type", cborText(string(typ))).encode())
		checkFieldErr(t, err, ErrMalformed, "body")
	}
	// A signature covers the type: the same bytes under another type's
	// name are another record, and the signature does not hold.
	r := statementRecord()
	r.Statement().Dispute = Link{testCommons}
	sb := sealed(t, r, testKey(9))
	if _, err := Validate(sb.Raw); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"dispute", "resolution"} {
		if _, err := Parse(mustDecode(sb.Raw).set("type", cborText(typ)).encode()); err == nil {
			t.Errorf("a statement's body parsed as a %s", typ)
		}
	}
}

// Only a genesis sets policy.association, within AssociationVersion.
func TestValidatePolicyAssociation(t *testing.T) {
	author := testKey(1).Public()
	g := func(p Policy) func() *Record {
		return func() *Record { r := genesisRecord(author); r.Manifest().Policy = &p; return r }
	}
	u := func(p Policy) func() *Record {
		return func() *Record { r := updateRecord(author); r.Manifest().Policy = &p; return r }
	}
	runValidation(t, []validationCase{
		{"genesis", g(Policy{Association: 1}), nil, ""},
		{"genesis at the version known", g(Policy{Association: AssociationVersion}), nil, ""},
		{"genesis above the version known", g(Policy{Association: AssociationVersion + 1}), ErrInvalid, "body.policy.association"},
		{"genesis asking 2", g(Policy{Association: 2}), ErrInvalid, "body.policy.association"},
		{"genesis asking 2^63", g(Policy{Association: 1 << 63}), ErrInvalid, "body.policy.association"},
		{"genesis asking 2^64-1", g(Policy{Association: 1<<64 - 1}), ErrInvalid, "body.policy.association"},
		{"genesis with the coalition, work and bans", g(Policy{Association: 1, Coalition: 1, Work: 1, Bans: true, MaxBlobBytes: 1}), nil, ""},
		{"genesis asking coalition 2 and association 2", g(Policy{Association: 2, Coalition: 2}), ErrInvalid, "body.policy.coalition"},
		{"genesis asking association 2 and too much work", g(Policy{Association: 2, Work: MaxWork + 1}), ErrInvalid, "body.policy.work"},
		{"update setting policy association", u(Policy{Association: 1}), ErrInvalid, "body.policy.association"},
		{"update setting policy association 2", u(Policy{Association: 2}), ErrInvalid, "body.policy.association"},
		{"update setting policy association beside a blob limit", u(Policy{MaxBlobBytes: 1, Association: 1}), ErrInvalid, "body.policy.association"},
		{"update setting the coalition and the association", u(Policy{Coalition: 1, Association: 1}), ErrInvalid, "body.policy.coalition"},
		{"update with a blob limit only", u(Policy{MaxBlobBytes: 1}), nil, ""},
	})
	// The same through Parse, for bytes signed without validating as
	// another writer might: refused before the signature is looked at.
	k := testKey(1)
	for _, tc := range []struct {
		name string
		rec  func() *Record
	}{
		{"genesis asking 2", g(Policy{Association: 2})},
		{"update setting policy association", u(Policy{Association: 1})},
	} {
		raw := signUnchecked(t, tc.rec(), k)
		_, err := Parse(raw)
		checkFieldErr(t, err, ErrInvalid, "body.policy.association")
		_, err = Admit(raw, cid.Undef, vectorTime, nil)
		checkFieldErr(t, err, ErrInvalid, "body.policy.association")
		if !Permanent(err) {
			t.Errorf("%s: Permanent(%v) = false", tc.name, err)
		}
	}
}

// The association's records are the genesis's to allow (§7.7): a dispute,
// a statement, a resolution, a certificate or a rotation is refused for
// good, naming its type, in a commons whose genesis does not set
// policy.association, and admitted in one whose genesis does, the genesis
// in the same batch counting; an update cannot set it.
func TestAdmitAssociation(t *testing.T) {
	k, k2 := testKey(4), testKey(5)
	newGenesis := func(p *Policy) *Block {
		r := genesisRecord(k.Public())
		r.Manifest().Policy = p
		return sealed(t, r, k)
	}
	carrying := newGenesis(&Policy{Association: 1})
	plain := newGenesis(nil)
	// A genesis that sets other policy, the coalition's among it, but not
	// the association.
	other := newGenesis(&Policy{Coalition: 1, Bans: true, MaxBlobBytes: 1 << 20})
	both := newGenesis(&Policy{Coalition: 1, Association: 1})
	geneses := map[cid.Cid]*Manifest{}
	for _, g := range []*Block{carrying, plain, other, both} {
		geneses[g.CID] = g.Record.Manifest()
	}
	rule := func(c cid.Cid) (*Manifest, error) {
		if g := geneses[c]; g != nil {
			return g, nil
		}
		return nil, fmt.Errorf("no genesis of %s here: %w", c, ErrNoGenesis)
	}
	absent := func(c cid.Cid) (*Manifest, error) {
		return nil, fmt.Errorf("no genesis of %s here: %w", c, ErrNoGenesis)
	}
	cosign := func(r *Record, author PrivateKey, cosigners ...PrivateKey) *Block {
		t.Helper()
		b, err := mustBlock(r, author, cosigners...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// in returns a contribution of g's commons, then a record of each of
	// the association's types about it, the association's acts signed by
	// k and co-signed by k2 under g.
	in := func(g *Block) (contribution *Block, records []*Block) {
		c := contributionRecord()
		c.Commons, c.Body.(*Contribution).Licence = g.CID, Link{g.CID}
		contribution = sealed(t, c, testKey(9))
		d := disputeRecord()
		d.Commons, d.Dispute().Subject, d.Dispute().Under = g.CID, &Link{contribution.CID}, Link{g.CID}
		dispute := sealed(t, d, testKey(6))
		s := statementRecord()
		s.Commons, s.Statement().Dispute = g.CID, Link{dispute.CID}
		res := resolutionRecord()
		res.Commons, res.Resolution().Dispute, res.Resolution().Under = g.CID, Link{dispute.CID}, Link{g.CID}
		cer := certificateRecord()
		cer.Commons, cer.Certificate().Under = g.CID, Link{g.CID}
		rel := releaseCertificateRecord()
		rel.Commons, rel.Certificate().Under = g.CID, Link{g.CID}
		rel.Certificate().Release.Contributions = []Link{{contribution.CID}}
		rot := rotationRecord()
		rot.Commons = g.CID
		return contribution, []*Block{
			dispute,
			sealed(t, s, testKey(9)),
			cosign(res, k, k2),
			cosign(cer, k, k2),
			cosign(rel, k, k2),
			cosign(rot, testKey(9), testKey(8)),
		}
	}
	refused := func(name string, err error) {
		t.Helper()
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !Permanent(err) || !errors.As(err, &fe) || fe.Field != "type" || !strings.Contains(err.Error(), "policy.association") {
			t.Errorf("%s: %v; want it refused for good, naming field type and policy.association", name, err)
		}
	}

	for _, g := range []*Block{carrying, both} {
		c, recs := in(g)
		for _, b := range recs {
			if _, err := Admit(b.Raw, g.CID, vectorTime, rule); err != nil {
				t.Errorf("a %s where the genesis sets policy.association: %v", b.Record.Type(), err)
			}
			// Without the genesis at hand, they wait.
			if _, err := Admit(b.Raw, cid.Undef, vectorTime, absent); !errors.Is(err, ErrNoGenesis) || Permanent(err) {
				t.Errorf("a %s whose genesis is not at hand: %v; want a delay", b.Record.Type(), err)
			}
		}
		batch := append([]*Block{recs[0], g, c}, recs[1:]...)
		if errs := AdmitBatch(batch, g.CID, vectorTime, nil); slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
			t.Errorf("the association's records with their genesis in the batch: %v", errs)
		}
	}

	for _, g := range []*Block{plain, other} {
		c, recs := in(g)
		for _, b := range recs {
			_, err := Admit(b.Raw, g.CID, vectorTime, rule)
			refused(fmt.Sprintf("a %s where the genesis does not set policy.association", b.Record.Type()), err)
			_, err = Admit(b.Raw, cid.Undef, vectorTime, nil)
			refused(fmt.Sprintf("a %s with no genesis rule", b.Record.Type()), err)
		}
		// What every commons carries is not asked for the association.
		if _, err := Admit(c.Raw, g.CID, vectorTime, rule); err != nil {
			t.Errorf("a contribution where the genesis does not set policy.association: %v", err)
		}
		batch := append([]*Block{recs[0], g, c}, recs[1:]...)
		errs := AdmitBatch(batch, g.CID, vectorTime, nil)
		for i, err := range errs {
			switch i {
			case 1, 2:
				if err != nil {
					t.Errorf("the genesis and a contribution in the batch: %v", err)
				}
			default:
				refused(fmt.Sprintf("a %s with its genesis, without policy.association, in the batch", batch[i].Record.Type()), err)
			}
		}
	}

	// The genesis of another commons in the batch vouches for nothing.
	_, recs := in(plain)
	errs := AdmitBatch(append([]*Block{carrying}, recs...), cid.Undef, vectorTime, rule)
	if errs[0] != nil {
		t.Errorf("genesis: %v", errs[0])
	}
	for i, err := range errs[1:] {
		refused(fmt.Sprintf("a %s beside another commons' genesis", recs[i].Record.Type()), err)
	}
	// The rule is checked before signatures, as the work is: a forged
	// record where the genesis does not set policy.association is refused
	// for its type; where it does, the signature is what fails.
	for _, g := range []*Block{plain, carrying} {
		_, recs := in(g)
		for _, b := range recs {
			forged := *b.Record
			forged.Sig[7] ^= 1
			fb, err := NewBlock(&forged)
			if err != nil {
				t.Fatal(err)
			}
			err = AdmitBatch([]*Block{fb}, cid.Undef, vectorTime, rule)[0]
			if g == plain {
				refused(fmt.Sprintf("a forged %s where the genesis does not set policy.association", b.Record.Type()), err)
			} else {
				checkFieldErr(t, err, ErrBadSignature, "sig")
			}
			if len(b.Record.Cosigs) == 0 {
				continue
			}
			forged = *b.Record
			forged.Cosigs = slices.Clone(b.Record.Cosigs)
			forged.Cosigs[0].Sig[7] ^= 1
			fc, err := NewBlock(&forged)
			if err != nil {
				t.Fatal(err)
			}
			err = AdmitBatch([]*Block{fc}, cid.Undef, vectorTime, rule)[0]
			if g == plain {
				refused(fmt.Sprintf("a %s with a forged co-signature where the genesis does not set policy.association", b.Record.Type()), err)
			} else {
				checkFieldErr(t, err, ErrBadSignature, "cosigs[0].sig")
			}
		}
	}
	// The two policies are apart: the coalition's records need
	// policy.coalition where the association's are carried.
	p := profileRecord()
	p.Commons = carrying.CID
	pb := sealed(t, p, testKey(9))
	_, err := Admit(pb.Raw, carrying.CID, vectorTime, rule)
	var fe *FieldError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != "type" || !strings.Contains(err.Error(), "policy.coalition") {
		t.Errorf("a profile where the genesis sets policy.association only: %v; want it refused, naming policy.coalition", err)
	}
	p.Commons = both.CID
	if _, err := Admit(sealed(t, p, testKey(9)).Raw, both.CID, vectorTime, rule); err != nil {
		t.Errorf("a profile where the genesis sets both policies: %v", err)
	}

	// A genesis asking a version this package does not know is refused,
	// whoever writes it; an update cannot set the policy.
	ask2 := genesisRecord(k.Public())
	ask2.Manifest().Policy = &Policy{Association: 2}
	checkFieldErr(t, Sign(ask2, k), ErrInvalid, "body.policy.association")
	_, err = Admit(signUnchecked(t, ask2, k), cid.Undef, vectorTime, nil)
	checkFieldErr(t, err, ErrInvalid, "body.policy.association")
	up := updateRecord(k.Public())
	up.Commons = carrying.CID
	up.Manifest().Prev = []Link{{carrying.CID}}
	up.Manifest().Policy = &Policy{Association: 1}
	checkFieldErr(t, Sign(up, k), ErrInvalid, "body.policy.association")
	_, err = Admit(signUnchecked(t, up, k), carrying.CID, vectorTime, rule)
	checkFieldErr(t, err, ErrInvalid, "body.policy.association")
}

// AssociationOf names the version that brought each type, and this package
// knows every version it names; the coalition's and the association's
// types are apart.
func TestAssociationOf(t *testing.T) {
	for _, c := range []struct {
		t                Type
		assoc, coalition int
	}{
		{TypeManifest, 0, 0}, {TypeContribution, 0, 0}, {TypeReview, 0, 0},
		{TypeProfile, 0, 1}, {TypeSponsorship, 0, 1}, {TypePledge, 0, 1}, {TypeAcknowledgement, 0, 1},
		{TypeDispute, 1, 0}, {TypeStatement, 1, 0}, {TypeResolution, 1, 0}, {TypeCertificate, 1, 0}, {TypeRotation, 1, 0},
		{Type("bounty"), 0, 0}, {Type("Dispute"), 0, 0},
	} {
		if got := AssociationOf(c.t); got != c.assoc || got > AssociationVersion {
			t.Errorf("AssociationOf(%s) = %d, want %d (at most %d)", c.t, got, c.assoc, AssociationVersion)
		}
		if got := CoalitionOf(c.t); got != c.coalition {
			t.Errorf("CoalitionOf(%s) = %d, want %d", c.t, got, c.coalition)
		}
	}
	var nilManifest *Manifest
	for _, c := range []struct {
		m    *Manifest
		want int
	}{
		{nilManifest, 0}, {&Manifest{}, 0}, {&Manifest{Policy: &Policy{Work: 3}}, 0}, {&Manifest{Policy: &Policy{Coalition: 1}}, 0},
		{&Manifest{Policy: &Policy{Association: 1}}, 1}, {&Manifest{Policy: &Policy{Association: 1, Coalition: 1}}, 1},
	} {
		if got := c.m.AssociationRecords(); got != c.want {
			t.Errorf("%+v.AssociationRecords() = %d, want %d", c.m, got, c.want)
		}
	}
	if (&Manifest{Policy: &Policy{Association: 1}}).Coalition() != 0 {
		t.Error("policy.association counts as policy.coalition")
	}
}

// A rotation's successor must be a key one holder controls: a key of
// small order, for which anyone can make signatures that verify under
// ZIP-215, or one that does not decode, is refused, and so is a missing
// one. Only the successor may co-sign.
func TestRotationWeakSuccessor(t *testing.T) {
	author := NewPrivateKeyFromSeed(bytes.Repeat([]byte{4}, 32))
	var ident PublicKey
	ident[0] = 1 // the identity point: small order
	var bad PublicKey
	for i := range bad {
		bad[i] = 0xff // y ≥ p: not canonical
	}
	for name, k := range map[string]PublicKey{"identity": ident, "non-canonical": bad} {
		r := &Record{Commons: RecordCID([]byte("c")), Time: 1, Body: &Rotation{Successor: k}}
		err := Sign(r, author)
		if !errors.Is(err, ErrInvalid) || fieldOf(err) != "body.successor" {
			t.Errorf("%s successor: %v; want ErrInvalid on body.successor", name, err)
		}
	}
	r := &Record{Commons: RecordCID([]byte("c")), Time: 1, Body: &Rotation{}}
	if err := Sign(r, author); !errors.Is(err, ErrMissing) || fieldOf(err) != "body.successor" {
		t.Errorf("no successor: %v; want ErrMissing on body.successor", err)
	}
	succ := NewPrivateKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	other := NewPrivateKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	r = &Record{Commons: RecordCID([]byte("c")), Time: 1, Body: &Rotation{Successor: succ.Public()}}
	if err := Sign(r, author); err != nil {
		t.Fatal(err)
	}
	if err := Cosign(r, other); !errors.Is(err, ErrInvalid) {
		t.Errorf("co-signed by another key: %v; want ErrInvalid", err)
	}
	if err := Cosign(r, succ); err != nil {
		t.Errorf("co-signed by the successor: %v", err)
	}
}

func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}
