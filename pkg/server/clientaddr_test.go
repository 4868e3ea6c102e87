package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddrBelievesOnlyTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct {
		name, peer string
		header     []string
		want       string
	}{
		{"from the proxy", "10.0.0.5:4000", []string{"203.0.113.7"}, "203.0.113.7:0"},
		{"the client's own word left of the proxy's", "10.0.0.5:4000", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7:0"},
		{"two proxies", "10.0.0.5:4000", []string{"203.0.113.7, 10.0.0.9"}, "203.0.113.7:0"},
		{"two header lines", "10.0.0.5:4000", []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7:0"},
		{"IPv6", "127.0.0.1:4000", []string{"2001:db8::7"}, "[2001:db8::7]:0"},
		{"only proxies", "10.0.0.5:4000", []string{"10.0.0.8"}, "10.0.0.8:0"},
		{"not from a proxy", "192.0.2.9:4000", []string{"203.0.113.7"}, "192.0.2.9:4000"},
		{"no header", "10.0.0.5:4000", nil, "10.0.0.5:4000"},
		{"garbage", "10.0.0.5:4000", []string{"203.0.113.7, evil"}, "10.0.0.5:4000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			h := ClientAddr("X-Forwarded-For", trusted)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr }))
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.header {
				r.Header.Add("X-Forwarded-For", v)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want {
				t.Errorf("RemoteAddr %q, want %q", got, tc.want)
			}
		})
	}
	// Without trusted proxies the header is never read.
	var got string
	h := ClientAddr("X-Forwarded-For", nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr }))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:4000"
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got != "10.0.0.5:4000" {
		t.Errorf("without trusted proxies: RemoteAddr %q", got)
	}
}
