package ncmec

import (
	"encoding/xml"
	"time"
)

// File relevance values.
const (
	RelevanceReported             = "Reported"
	RelevanceSupplementalReported = "Supplemental Reported"
)

// Industry classification (Tech Coalition scale): A prepubescent, B
// pubescent; 1 sex act, 2 lascivious exhibition. Only for ESPs that signed
// NCMEC's hash-sharing MOU, and only on Reported files.
const (
	ClassA1 = "A1"
	ClassA2 = "A2"
	ClassB1 = "B1"
	ClassB2 = "B2"
)

// originalFileHash hashType values. The attribute is free text in the XSD;
// these are the spellings clients use.
const (
	HashMD5    = "MD5"
	HashSHA1   = "SHA1"
	HashSHA256 = "SHA256"
	HashPDQ    = "PDQ"
)

// FileDetails is the <fileDetails> document sent to /fileinfo for one
// uploaded file.
type FileDetails struct {
	XMLName                xml.Name   `xml:"fileDetails"`
	ReportID               int64      `xml:"reportId"`
	FileID                 string     `xml:"fileId"`
	FileName               string     `xml:"fileName,omitempty"`
	OriginalFileName       string     `xml:"originalFileName,omitempty"`
	UploadedToESPTimestamp *time.Time `xml:"uploadedToEspTimestamp,omitempty"`
	LocationOfFile         string     `xml:"locationOfFile,omitempty"`
	// FileViewedByESP must be the truth: whether a person at the company
	// viewed the entire file (see United States v. Wilson).
	FileViewedByESP   *bool  `xml:"fileViewedByEsp,omitempty"`
	EXIFViewedByESP   *bool  `xml:"exifViewedByEsp,omitempty"`
	PubliclyAvailable *bool  `xml:"publiclyAvailable,omitempty"`
	FileRelevance     string `xml:"fileRelevance,omitempty"`
	// PotentialMeme and FileAnnotations are an XSD choice: set at most one.
	PotentialMeme          *bool            `xml:"potentialMeme,omitempty"`
	FileAnnotations        *FileAnnotations `xml:"fileAnnotations,omitempty"`
	IndustryClassification string           `xml:"industryClassification,omitempty"`
	OriginalFileHash       []Hash           `xml:"originalFileHash,omitempty"`
	IPCaptureEvent         *IPCaptureEvent  `xml:"ipCaptureEvent,omitempty"` // the upload IP and time
	DeviceID               []DeviceID       `xml:"deviceId,omitempty"`
	Details                []Details        `xml:"details,omitempty"`
	AdditionalInfo         []string         `xml:"additionalInfo,omitempty"`
}

// FileAnnotations are flags fixed to "true" in the schema; false ones are
// left out.
type FileAnnotations struct {
	AnimeDrawingVirtualHentai bool `xml:"animeDrawingVirtualHentai,omitempty"`
	PotentialMeme             bool `xml:"potentialMeme,omitempty"`
	Viral                     bool `xml:"viral,omitempty"`
	PossibleSelfProduction    bool `xml:"possibleSelfProduction,omitempty"`
	PhysicalHarm              bool `xml:"physicalHarm,omitempty"`
	ViolenceGore              bool `xml:"violenceGore,omitempty"`
	Bestiality                bool `xml:"bestiality,omitempty"`
	LiveStreaming             bool `xml:"liveStreaming,omitempty"`
	Infant                    bool `xml:"infant,omitempty"`
	GenerativeAI              bool `xml:"generativeAi,omitempty"`
}

// Hash is a hash of the file as the reported user uploaded it.
type Hash struct {
	Type  string `xml:"hashType,attr"` // HashMD5, HashSHA1, HashSHA256, HashPDQ
	Value string `xml:",chardata"`
}

// Details carries name/value metadata such as EXIF fields.
type Details struct {
	Type  string      `xml:"type,attr,omitempty"` // "EXIF" or "HASH"
	Pairs []NameValue `xml:"nameValuePair"`
}

type NameValue struct {
	Name  string `xml:"name"`
	Value string `xml:"value"`
}
