package web

import "testing"

// TestLocalPathKeepsTheSignInOnThisSite: the page to return to after
// sign-in comes from the query string; anything a browser could read as
// another origin must become "/". Browsers drop TAB, CR and LF anywhere in
// a URL and leading or trailing C0 controls and spaces, so "/\t/evil" is
// "//evil" to them: a protocol-relative URL.
func TestLocalPathKeepsTheSignInOnThisSite(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		{"/reports", "/reports"},
		{"/reports/abc?x=1#top", "/reports/abc?x=1#top"},
		{"/reports?q=a%20b", "/reports?q=a%20b"},
		{"", "/"},
		{"reports", "/"},
		{"//evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/\x0b/evil.example", "/"},
		{"/\x0c/evil.example", "/"},
		{"/ /evil.example", "/"},
		{"/\r\n/evil.example", "/"},
		{"\t//evil.example", "/"},
		{" /reports", "/"},
		{"/\u00a0/evil.example", "/"},
		{"/\u2028/evil.example", "/"},
		{"/\x7f/evil.example", "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"/%2F/evil.example", "/%2F/evil.example"}, // still a path here: browsers keep %2F encoded
	} {
		if got := localPath(tc.next); got != tc.want {
			t.Errorf("localPath(%q) = %q, want %q", tc.next, got, tc.want)
		}
	}
}
