package ncmec

import (
	"bytes"
	"encoding/xml"
	"fmt"

	"takedown/pkg/reportrules"
)

// schemaLocation is the hint every known client puts on its documents; the
// schema has no target namespace.
const schemaLocation = "https://report.cybertip.org/ispws/xsd"

// EncodeReport renders r as the exact bytes /submit receives. Callers that
// must keep the XML they sent (DESIGN §4) encode once, store the bytes, and
// send them with SubmitXML.
func EncodeReport(r *Report) ([]byte, error) {
	if err := checkReport(r); err != nil {
		return nil, fmt.Errorf("ncmec encode report: %w", err)
	}
	b, err := encode(r, "report")
	if err != nil {
		return nil, fmt.Errorf("ncmec encode report: %w", err)
	}
	return b, nil
}

// EncodeFileDetails renders d as the exact bytes /fileinfo receives.
func EncodeFileDetails(d *FileDetails) ([]byte, error) {
	if err := checkFileDetails(d); err != nil {
		return nil, fmt.Errorf("ncmec encode fileDetails: %w", err)
	}
	b, err := encode(d, "fileDetails")
	if err != nil {
		return nil, fmt.Errorf("ncmec encode fileDetails: %w", err)
	}
	return b, nil
}

func encode(v any, root string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	start := xml.StartElement{
		Name: xml.Name{Local: root},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "xmlns:xsi"}, Value: "http://www.w3.org/2001/XMLSchema-instance"},
			{Name: xml.Name{Local: "xsi:noNamespaceSchemaLocation"}, Value: schemaLocation},
		},
	}
	if err := enc.EncodeElement(v, start); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkReport catches, before anything is sent, the mistakes the schema or
// NCMEC would reject with 4100 and that the type system cannot prevent.
func checkReport(r *Report) error {
	if r == nil {
		return fmt.Errorf("%w: nil report", ErrInvalidInput)
	}
	s := r.IncidentSummary
	if s.IncidentType == "" {
		return fmt.Errorf("%w: incidentSummary.incidentType is required", ErrInvalidInput)
	}
	if s.IncidentDateTime.IsZero() {
		return fmt.Errorf("%w: incidentSummary.incidentDateTime is required", ErrInvalidInput)
	}
	for i, d := range r.InternetDetails {
		if n := countSet(d.WebPageIncident != nil, d.EmailIncident != nil, d.NewsgroupIncident != nil,
			d.ChatIMIncident != nil, d.OnlineGamingIncident != nil, d.CellPhoneIncident != nil,
			d.NonInternetIncident != nil, d.Peer2PeerIncident != nil); n != 1 {
			return fmt.Errorf("%w: internetDetails[%d] must hold exactly one incident, has %d", ErrInvalidInput, i, n)
		}
		if w := d.WebPageIncident; w != nil {
			for _, u := range w.URL {
				if err := checkURL(u); err != nil {
					return fmt.Errorf("%w: internetDetails[%d] url %q: %v", ErrInvalidInput, i, u, err)
				}
			}
		}
	}
	if r.LawEnforcement != nil && r.LawEnforcement.AgencyName == "" {
		return fmt.Errorf("%w: lawEnforcement.agencyName is required", ErrInvalidInput)
	}
	return nil
}

// checkURL refuses what NCMEC answers 4100 to (whitespace or control
// characters inside a URL) by the rule intake checks URLs with, so that a
// URL intake accepted is never refused here.
func checkURL(u string) error { return reportrules.URL(u) }

func checkFileDetails(d *FileDetails) error {
	if d == nil {
		return fmt.Errorf("%w: nil fileDetails", ErrInvalidInput)
	}
	if d.ReportID <= 0 {
		return fmt.Errorf("%w: reportId is required", ErrInvalidInput)
	}
	if d.FileID == "" {
		return fmt.Errorf("%w: fileId is required", ErrInvalidInput)
	}
	if d.LocationOfFile != "" {
		if err := checkURL(d.LocationOfFile); err != nil {
			return fmt.Errorf("%w: locationOfFile %q: %v", ErrInvalidInput, d.LocationOfFile, err)
		}
	}
	if d.PotentialMeme != nil && d.FileAnnotations != nil {
		return fmt.Errorf("%w: potentialMeme and fileAnnotations are exclusive", ErrInvalidInput)
	}
	for i, h := range d.OriginalFileHash {
		if h.Type == "" || h.Value == "" {
			return fmt.Errorf("%w: originalFileHash[%d] needs hashType and value", ErrInvalidInput, i)
		}
	}
	for i, det := range d.Details {
		if len(det.Pairs) == 0 {
			return fmt.Errorf("%w: details[%d] needs at least one nameValuePair", ErrInvalidInput, i)
		}
	}
	return nil
}

func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
