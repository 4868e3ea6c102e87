package sfsim

import "testing"

func TestIDChecksum(t *testing.T) {
	t.Parallel()
	// A 15/18-character pair as Salesforce documents and tools reproduce it.
	tests := []struct{ in, want string }{
		{"001A0000006Vm9r", "001A0000006Vm9rIAC"},
		{"001A0000006Vm9rIAC", "001A0000006Vm9rIAC"},
		{"001a0000006vm9riac", "001A0000006Vm9rIAC"}, // 18-character ids are case-insensitive
		{"500000000000001", "500000000000001AAA"},
		{"not-an-id", ""},
		{"001A0000006Vm9", ""},
	}
	for _, tt := range tests {
		if got := canonicalID(tt.in); got != tt.want {
			t.Errorf("canonicalID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVersionLabels(t *testing.T) {
	t.Parallel()
	want := map[string]string{"60.0": "Spring '24", "62.0": "Winter '25", "64.0": "Summer '25", "66.0": "Spring '26", "59.0": "Winter '24", "58.0": "Summer '23"}
	for _, v := range versions() {
		if w, ok := want[v["version"]]; ok && v["label"] != w {
			t.Errorf("v%s label = %q, want %q", v["version"], v["label"], w)
		}
	}
}
