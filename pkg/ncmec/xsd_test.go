package ncmec_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"takedown/pkg/ncmec"
)

// Every document the client produces must validate against NCMEC's XSD.
func TestDocumentsValidateAgainstXSD(t *testing.T) {
	t.Parallel()
	xsd := xsdPath(t)
	lint := needXMLLint(t)

	withMeme := maximalFileDetails(7855776, "e6cb48fbb2b565e69ccded9b9cda62fb")
	withMeme.FileAnnotations, withMeme.PotentialMeme = nil, ncmec.Bool(true)

	docs := map[string]func() ([]byte, error){
		"minimal report": func() ([]byte, error) { return ncmec.EncodeReport(minimalReport()) },
		"maximal report": func() ([]byte, error) { return ncmec.EncodeReport(maximalReport()) },
		"minimal fileDetails": func() ([]byte, error) {
			return ncmec.EncodeFileDetails(&ncmec.FileDetails{ReportID: 1, FileID: "b0754af766b426f2928a02c651ed4b99"})
		},
		"maximal fileDetails": func() ([]byte, error) {
			return ncmec.EncodeFileDetails(maximalFileDetails(7855776, "e6cb48fbb2b565e69ccded9b9cda62fb"))
		},
		"fileDetails with potentialMeme": func() ([]byte, error) { return ncmec.EncodeFileDetails(withMeme) },
	}
	for name, encode := range docs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc, err := encode()
			if err != nil {
				t.Fatal(err)
			}
			if problem := xmllint(t, lint, xsd, doc); problem != "" {
				t.Fatalf("does not validate:\n%s\n\n%s", problem, doc)
			}
		})
	}
}

// The maximal report really contains what it claims, in schema order.
func TestMaximalReportOrder(t *testing.T) {
	t.Parallel()
	doc, err := ncmec.EncodeReport(maximalReport())
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	order := []string{"<batchedReport", "<incidentSummary>", "<escalateToHighPriority>", "<reportAnnotations>",
		"<incidentDateTime>", "<internetDetails>", "<webPageIncident", "<lawEnforcement>", "<reporter>",
		"<reportingPerson>", "<contactPerson>", "<personOrUserReported>", "<ipCaptureEvent>", "<priorCTReports>",
		"<intendedRecipient>", "<victim>"}
	rest := s
	for _, el := range order {
		i := strings.Index(rest, el)
		if i < 0 {
			t.Fatalf("%s missing or out of order in\n%s", el, doc)
		}
		rest = rest[i+len(el):]
	}
	if !strings.Contains(s, `xsi:noNamespaceSchemaLocation="https://report.cybertip.org/ispws/xsd"`) {
		t.Errorf("schema location hint missing")
	}
}

func TestEncodeRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	noDate := minimalReport()
	noDate.IncidentSummary.IncidentDateTime = time.Time{}
	twoIncidents := minimalReport()
	twoIncidents.InternetDetails = []ncmec.InternetDetails{{WebPageIncident: &ncmec.WebPageIncident{}, EmailIncident: &ncmec.EmailIncident{}}}
	badURL := minimalReport()
	badURL.InternetDetails = []ncmec.InternetDetails{{WebPageIncident: &ncmec.WebPageIncident{URL: []string{"https://x.example/a b"}}}}
	both := maximalFileDetails(1, "f")
	both.PotentialMeme = ncmec.Bool(true)
	urlWith := func(u string) func() error {
		r := minimalReport()
		r.InternetDetails = []ncmec.InternetDetails{{WebPageIncident: &ncmec.WebPageIncident{URL: []string{u}}}}
		return func() error { _, err := ncmec.EncodeReport(r); return err }
	}
	badLocation := maximalFileDetails(1, "f")
	badLocation.LocationOfFile = "https://x.example/a\u00a0b"

	cases := map[string]func() error{
		"nil report":           func() error { _, err := ncmec.EncodeReport(nil); return err },
		"no incident date":     func() error { _, err := ncmec.EncodeReport(noDate); return err },
		"two incidents in one": func() error { _, err := ncmec.EncodeReport(twoIncidents); return err },
		"url with space":       func() error { _, err := ncmec.EncodeReport(badURL); return err },
		// The rule is reportrules.URL, the one intake checks with.
		"url with NBSP":             urlWith("https://x.example/a\u00a0b"),
		"url with line separator":   urlWith("https://x.example/a\u2028b"),
		"url with zero-width space": urlWith("https://x.example/a\u200bb"),
		"relative url":              urlWith("/a"),
		"locationOfFile with NBSP":  func() error { _, err := ncmec.EncodeFileDetails(badLocation); return err },
		"meme and annotations":      func() error { _, err := ncmec.EncodeFileDetails(both); return err },
		"no file id":                func() error { _, err := ncmec.EncodeFileDetails(&ncmec.FileDetails{ReportID: 1}); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ncmec.ErrInvalidInput) {
			t.Errorf("%s: got %v, want ErrInvalidInput", name, err)
		}
	}
}
