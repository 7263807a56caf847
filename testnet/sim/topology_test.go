package sim

import (
	"slices"
	"testing"
)

// RandomEdges gives a connected topology without self-links or repeated
// pairs, the same for the same seed.
func TestRandomEdges(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n, degree   int
		wantAtLeast int // the ring
	}{
		{"two", 2, 6, 1},
		{"ring only", 10, 2, 10},
		{"degree 4", 10, 4, 10},
		{"degree 6", 50, 6, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edges := RandomEdges(tc.n, tc.degree, 7)
			if !slices.Equal(edges, RandomEdges(tc.n, tc.degree, 7)) {
				t.Fatal("the same seed gave another topology")
			}
			if len(edges) < tc.wantAtLeast || len(edges) > tc.n*tc.degree/2+tc.n {
				t.Fatalf("%d edges for %d members of degree %d", len(edges), tc.n, tc.degree)
			}
			seen := map[[2]int]bool{}
			links := make([][]int, tc.n)
			for _, e := range edges {
				if e[0] >= e[1] || e[0] < 0 || e[1] >= tc.n {
					t.Fatalf("edge %v: want 0 <= lower < higher < %d", e, tc.n)
				}
				if seen[e] {
					t.Fatalf("edge %v listed twice", e)
				}
				seen[e] = true
				links[e[0]] = append(links[e[0]], e[1])
				links[e[1]] = append(links[e[1]], e[0])
			}
			reached := map[int]bool{0: true}
			for queue := []int{0}; len(queue) > 0; queue = queue[1:] {
				for _, j := range links[queue[0]] {
					if !reached[j] {
						reached[j] = true
						queue = append(queue, j)
					}
				}
			}
			if len(reached) != tc.n {
				t.Fatalf("member 0 reaches %d of %d members", len(reached), tc.n)
			}
		})
	}
	if slices.Equal(RandomEdges(50, 6, 7), RandomEdges(50, 6, 8)) {
		t.Error("seeds 7 and 8 gave the same topology")
	}
}
