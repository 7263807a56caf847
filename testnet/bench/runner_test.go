package bench

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/testnet/sim"
)

// standalone runs its function as testing would: Fatal stops it, Errorf
// does not, cleanups run last first after the context is done, and the
// failures come back as one error.
func TestStandalone(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fn      func(t sim.T)
		wantErr string // "" for success
		after   bool   // whether the code after the failing call runs
	}{
		{"success", func(sim.T) {}, "", true},
		{"Errorf goes on", func(t sim.T) { t.Errorf("bad %d", 1) }, "run: bad 1", true},
		{"Fatalf stops", func(t sim.T) { t.Fatalf("worse %d", 2) }, "run: worse 2", false},
		{"Fatal stops", func(t sim.T) { t.Fatal("worst") }, "run: worst", false},
		{"both", func(t sim.T) { t.Errorf("bad"); t.Fatal("worst") }, "run: bad; worst", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var order []string
			after := false
			err := standalone(t.Context(), "run", slog.New(slog.DiscardHandler), func(r sim.T) {
				if r.Name() != "run" {
					t.Errorf("Name() = %q", r.Name())
				}
				r.Cleanup(func() { order = append(order, "first") })
				r.Cleanup(func() {
					if r.Context().Err() == nil {
						t.Error("the context is not done when the cleanups run")
					}
					order = append(order, "second")
				})
				tc.fn(r)
				after = true
				if r.Failed() != (tc.wantErr != "") {
					t.Errorf("Failed() = %v", r.Failed())
				}
			})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			if after != tc.after {
				t.Errorf("code after the call ran: %v, want %v", after, tc.after)
			}
			if !slices.Equal(order, []string{"second", "first"}) {
				t.Errorf("cleanups ran %v, want [second first]", order)
			}
		})
	}
}

// A panic that is not a Fatal passes through, at once: it is a bug, not a
// failed run.
func TestStandalonePanic(t *testing.T) {
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, want boom", p)
		}
	}()
	_ = standalone(context.Background(), "run", slog.New(slog.DiscardHandler), func(sim.T) { panic("boom") })
	t.Error("standalone returned")
}

// A result prints its figures and notes, and finds a figure by name.
func TestResult(t *testing.T) {
	res := newResult("demo", 10)
	res.add("time", 1.5, "s")
	res.add("count", 3, "")
	res.note("a %s", "note")
	if v, ok := res.Get("time"); !ok || v != 1.5 {
		t.Errorf("Get(time) = %v, %v", v, ok)
	}
	if _, ok := res.Get("absent"); ok {
		t.Error("Get(absent) found a figure")
	}
	if got := res.Figures[0].String(); got != "time: 1.5 s" {
		t.Errorf("String() = %q", got)
	}
	if got := res.Figures[1].String(); got != "count: 3" {
		t.Errorf("String() = %q", got)
	}
	var b strings.Builder
	res.WriteText(&b)
	for _, want := range []string{"demo: 10 records", "time   1.5 s", "count  3", "note: a note"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("WriteText lacks %q:\n%s", want, b.String())
		}
	}
}
