package main

import (
	"os"
	"testing"
)

// TestMain keeps every daemon the tests start, in process or as a child,
// off the machine's networks: no multicast DNS, which would announce and
// look for peers on every interface. Tests reach only loopback.
func TestMain(m *testing.M) {
	os.Setenv("COMMONS_MDNS", "false")
	os.Exit(m.Run())
}
