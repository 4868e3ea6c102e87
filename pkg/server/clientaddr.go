package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr sets r.RemoteAddr to the client's address as the trusted
// proxies in front of the service report it in header (X-Forwarded-For, or
// a header such as X-Real-IP holding one address), so that the audit log
// names the staff member's machine rather than the TLS proxy's. The header
// is believed only on a connection from one of trusted: anyone else could
// write any address into it. Without trusted it does nothing.
//
// X-Forwarded-For is read from the right: each proxy appends the address it
// was connected from, so the first address from the right that is not
// itself a trusted proxy is the client (entries further left are the
// client's own word). A header that does not parse leaves the peer's address.
// The client's port is not known: the address is given with port 0.
func ClientAddr(header string, trusted []netip.Prefix) func(http.Handler) http.Handler {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		if len(trusted) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil || !isTrusted(peer.Addr()) {
				next.ServeHTTP(w, r)
				return
			}
			var hops []string
			for _, v := range r.Header.Values(header) {
				hops = append(hops, strings.Split(v, ",")...)
			}
			for i := len(hops) - 1; i >= 0; i-- {
				a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
				if err != nil {
					break
				}
				if i == 0 || !isTrusted(a) {
					r2 := r.Clone(r.Context())
					r2.RemoteAddr = net.JoinHostPort(a.Unmap().String(), "0")
					next.ServeHTTP(w, r2)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
