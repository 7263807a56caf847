package api

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// CheckHost refuses requests whose Host header names neither loopback
// (localhost, *.localhost), nor an IP address, nor one of hosts: a web
// page served by a name that resolves to this machine (DNS rebinding)
// would otherwise read, in the user's browser, what the API answers. A
// browser sends the name it was given as Host; an IP address there is
// what was dialled, no name to rebind.
// refused, if not nil, is told of each request refused.
func CheckHost(next http.Handler, hosts []string, refused func(*http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, hosts) {
			if refused != nil {
				refused(r)
			}
			writeError(w, http.StatusForbidden, fmt.Errorf("the API does not answer for host %q: it answers for localhost and IP addresses; to reach it by that name, commons config set api_hosts %s", r.Host, hostname(r.Host)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostname is the host of a Host header, without its port or brackets.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

func hostAllowed(host string, hosts []string) bool {
	h := hostname(host)
	switch {
	case h == "":
		return false
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return true
	case net.ParseIP(h) != nil:
		return true
	}
	return slices.ContainsFunc(hosts, func(a string) bool { return strings.EqualFold(a, h) })
}
