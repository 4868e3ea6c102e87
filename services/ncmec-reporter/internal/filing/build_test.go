package filing_test

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"takedown/pkg/ncmec"
	"takedown/pkg/reportrules"
	"takedown/pkg/reportrules/reporttest"
	"takedown/pkg/testenv"
	"takedown/services/ncmec-reporter/internal/filing"
)

var reporter = filing.Reporter{
	Person:  filing.Person{FirstName: "Ada", LastName: "Staff", Email: "ncmec@example.org", Phone: "5555550100"},
	Address: filing.Address{Street: "1 Main St", City: "Springfield", ZipCode: "12345", State: "VA", Country: "US"},
}

// Every report intake accepts is built and encoded by the reporter without
// error, and (the longest and a share of the random ones) validates
// against NCMEC's XSD: the encoder's URL rule is reportrules.URL, the one
// intake checks with.
func TestEveryAcceptedReportIsFiled(t *testing.T) {
	t.Parallel()
	var docs [][]byte // to validate against the XSD
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(15, 3))
	samples := []reportrules.Sample{reportrules.LongestSample()}
	for range 200 {
		samples = append(samples, reportrules.RandomSample(r))
	}
	for i, s := range samples {
		sub := reporttest.Submitted(t, s)
		rep, err := filing.Report(sub, reporter, now)
		if err != nil {
			t.Fatalf("sample %d: build: %v", i, err)
		}
		doc, err := ncmec.EncodeReport(rep)
		if err != nil {
			t.Fatalf("sample %d: encode: %v", i, err)
		}
		check := i%20 == 0 // xmllint is a process per document: a share is enough
		if check {
			docs = append(docs, doc)
		}
		for _, f := range sub.Files {
			d, err := ncmec.EncodeFileDetails(filing.FileDetails(f, 7855777, "e6cb48fbb2b565e69ccded9b9cda62fb"))
			if err != nil {
				t.Fatalf("sample %d, file %q: encode: %v", i, f.Name, err)
			}
			if check {
				docs = append(docs, d)
			}
		}
	}
	t.Run("xsd", func(t *testing.T) {
		xsd := filepath.Join(testenv.SharedDir(t, "ncmec"), "cyber_tipline.xsd")
		lint, err := exec.LookPath("xmllint")
		if err != nil {
			t.Skip("xmllint not found: install libxml2-utils (Debian)")
		}
		for _, doc := range docs {
			cmd := exec.Command(lint, "--noout", "--nonet", "--schema", xsd, "-")
			cmd.Stdin = bytes.NewReader(doc)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("does not validate: %s\n%.2000s", out, doc)
			}
		}
	})
}
