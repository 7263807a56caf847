package protocol

import (
	"fmt"
	"strings"
)

// parseSPDX checks the grammar of an SPDX license expression (SPDX 2.3,
// annex D): compound := simple | compound AND compound | compound OR compound
// | simple WITH exception | "(" compound ")". Identifiers are not checked
// against the SPDX list, which changes over time; their spelling is.
func parseSPDX(s string) error {
	toks := tokenizeSPDX(s)
	p := spdxParser{toks: toks}
	if err := p.expr(); err != nil {
		return err
	}
	if p.pos != len(toks) {
		return fmt.Errorf("unexpected %q", toks[p.pos])
	}
	return nil
}

func tokenizeSPDX(s string) []string {
	var toks []string
	s = strings.ReplaceAll(strings.ReplaceAll(s, "(", " ( "), ")", " ) ")
	for _, f := range strings.Fields(s) {
		toks = append(toks, f)
	}
	return toks
}

type spdxParser struct {
	toks []string
	pos  int
}

func (p *spdxParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *spdxParser) expr() error {
	if err := p.term(); err != nil {
		return err
	}
	for p.peek() == "AND" || p.peek() == "OR" {
		p.pos++
		if err := p.term(); err != nil {
			return err
		}
	}
	return nil
}

func (p *spdxParser) term() error {
	switch t := p.peek(); {
	case t == "":
		return fmt.Errorf("expression ends early")
	case t == "(":
		p.pos++
		if err := p.expr(); err != nil {
			return err
		}
		if p.peek() != ")" {
			return fmt.Errorf("missing )")
		}
		p.pos++
		return nil
	default:
		if err := spdxID(t); err != nil {
			return err
		}
		p.pos++
		if p.peek() == "WITH" {
			p.pos++
			if err := spdxID(p.peek()); err != nil {
				return fmt.Errorf("after WITH: %w", err)
			}
			p.pos++
		}
		return nil
	}
}

func spdxID(t string) error {
	switch t {
	case "", "AND", "OR", "WITH", "(", ")":
		return fmt.Errorf("expected a licence identifier, got %q", t)
	}
	id := strings.TrimSuffix(t, "+")
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == ':') {
			return fmt.Errorf("%q has a character SPDX identifiers cannot hold", t)
		}
	}
	if id == "" {
		return fmt.Errorf("empty identifier")
	}
	return nil
}
