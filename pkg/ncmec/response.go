package ncmec

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Response is NCMEC's <reportResponse>, the answer of every endpoint but
// /finish. The XML fields are in XSD order so the simulator can marshal it.
type Response struct {
	XMLName     xml.Name `xml:"reportResponse"`
	Code        int      `xml:"responseCode"`
	Description string   `xml:"responseDescription"`
	ReportID    int64    `xml:"reportId,omitempty"`
	FileID      string   `xml:"fileId,omitempty"`
	Hash        string   `xml:"hash,omitempty"` // MD5 (hex) of the bytes NCMEC received

	RequestID string `xml:"-"` // the Request-ID header
	Raw       []byte `xml:"-"` // the body as received, for the record
}

// DoneResponse is NCMEC's <reportDoneResponse>, the answer of /finish: the
// receipt that serves as notification under 18 U.S.C. 2258A. Keep Raw.
type DoneResponse struct {
	XMLName  xml.Name  `xml:"reportDoneResponse"`
	Code     int       `xml:"responseCode"`
	ReportID int64     `xml:"reportId"`
	Files    FileIDSet `xml:"files"`

	RequestID string `xml:"-"`
	Raw       []byte `xml:"-"`
}

// FileIDSet is the <files> element; it is present (possibly empty) in every
// reportDoneResponse.
type FileIDSet struct {
	IDs []string `xml:"fileId"`
}

// DefaultMaxResponseBytes caps every response body read by the client. Real
// answers are a few hundred bytes; the XSD is ~150 KB.
const DefaultMaxResponseBytes = 1 << 20

// readCapped reads at most max bytes of r; more is ErrResponseTooLarge.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w (%d bytes)", ErrResponseTooLarge, max)
	}
	return b, nil
}

// decodeAnswer parses body as one of the CyberTipline answer documents.
// It returns *Response or *DoneResponse according to the root element and
// refuses DOCTYPEs (entity expansion attacks) and any other root.
func decodeAnswer(body []byte) (any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformedResponse)
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.CharsetReader = charsetReader
	dec.Entity = nil // only the five predefined entities
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: no root element", ErrMalformedResponse)
			}
			return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) {
				return nil, ErrDoctype
			}
			return nil, fmt.Errorf("%w: unexpected directive", ErrMalformedResponse)
		case xml.CharData:
			if len(bytes.TrimSpace(bytes.TrimPrefix(t, []byte("\ufeff")))) > 0 {
				return nil, fmt.Errorf("%w: text before the root element", ErrMalformedResponse)
			}
		case xml.StartElement:
			var r any
			switch t.Name.Local {
			case "reportResponse":
				r = &Response{Raw: body}
			case "reportDoneResponse":
				r = &DoneResponse{Raw: body}
			default:
				return nil, fmt.Errorf("%w: root element <%s>", ErrMalformedResponse, t.Name.Local)
			}
			// The XSD requires a responseCode; without one, Code's zero
			// value would read as success (found by FuzzAnswer: a /finish
			// "succeeded" on a <reportDoneResponse> without it).
			if !hasResponseCode(body) {
				return nil, fmt.Errorf("%w: <%s> without responseCode", ErrMalformedResponse, t.Name.Local)
			}
			if err := dec.DecodeElement(r, &t); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
			}
			return r, nil
		}
		// ProcInst, Comment, whitespace before the root: skip.
	}
}

// hasResponseCode reports whether the root element of the answer document
// body has a responseCode child.
func hasResponseCode(body []byte) bool {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.CharsetReader = charsetReader
	dec.Entity = nil
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "responseCode" {
				return true
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return false
			}
		}
	}
}

// charsetReader accepts the encodings a CyberTipline answer may declare.
// The 2016 server declared UTF-8 in the XML and ISO-8859-1 in HTTP; we trust
// the XML declaration, which is what encoding/xml hands us here.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1", "iso8859-1":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(b))
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c))
		}
		return bytes.NewReader(out), nil
	}
	return nil, fmt.Errorf("unsupported charset %q", label)
}

// rootElement returns the local name of the root element of an XML
// document, or "" when there is none or the document has a DOCTYPE.
func rootElement(b []byte) string {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.CharsetReader = charsetReader
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.Directive:
			return ""
		case xml.StartElement:
			return t.Name.Local
		}
	}
}
