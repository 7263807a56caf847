package testnet

import (
	"context"
	"testing"
)

// benchScenario runs a scenario as a Go benchmark and reports its figures.
func benchScenario(b *testing.B, name string, o BenchOptions) {
	for b.Loop() {
		res, err := Scenarios[name](context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range res.Figures {
			b.Logf("%s: %s %s", f.Name, formatFigure(f.Value), f.Unit)
		}
		for _, n := range res.Notes {
			b.Logf("note: %s", n)
		}
	}
}

func BenchmarkIngest(b *testing.B)    { benchScenario(b, "ingest", BenchOptions{}) }
func BenchmarkJoin(b *testing.B)      { benchScenario(b, "join", BenchOptions{}) }
func BenchmarkRepair(b *testing.B)    { benchScenario(b, "repair", BenchOptions{}) }
func BenchmarkPropagate(b *testing.B) { benchScenario(b, "propagate", BenchOptions{}) }
func BenchmarkPartition(b *testing.B) { benchScenario(b, "partition", BenchOptions{}) }

// Every scenario runs at a tiny size, so that CI exercises them.
func TestBenchSmoke(t *testing.T) {
	tiny := map[string]BenchOptions{
		"ingest":    {Records: 300},
		"join":      {Records: 300},
		"repair":    {Records: 300},
		"propagate": {Nodes: 6, Rounds: 2},
		"partition": {Nodes: 4, Records: 10},
	}
	for _, name := range ScenarioNames() {
		t.Run(name, func(t *testing.T) {
			o := tiny[name]
			o.Dir = t.TempDir()
			res, err := Scenarios[name](context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Figures) == 0 {
				t.Fatal("no figures")
			}
			for _, f := range res.Figures {
				t.Logf("%s: %s %s", f.Name, formatFigure(f.Value), f.Unit)
			}
			switch name {
			case "partition":
				if v, _ := res.Get("records missing on some node"); v != 0 {
					t.Errorf("%v records missing after heal", v)
				}
				if v, _ := res.Get("distinct state roots after heal"); v != 1 {
					t.Errorf("%v state roots after heal", v)
				}
			case "propagate":
				if v, _ := res.Get("virtual: deliveries missed"); v != 0 {
					t.Errorf("%v deliveries missed", v)
				}
			}
		})
	}
}
