package ncmec_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/testenv"
)

// startSim runs a simulator with admin on and returns it with a client.
func startSim(t *testing.T, opts ncmecsim.Options, copts ...func(*ncmec.Options)) (*ncmecsim.Server, *ncmec.Client) {
	t.Helper()
	opts.Admin = true
	sim, base := ncmecsim.StartTest(t, opts)
	o := ncmec.Options{BaseURL: base, Username: ncmecsim.TestUsername, Password: ncmecsim.TestPassword}
	if opts.Username != "" {
		o.Username, o.Password = opts.Username, opts.Password
	}
	for _, f := range copts {
		f(&o)
	}
	c, err := ncmec.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

// xsdPath returns the shared XSD, skipping when the shared data is absent.
func xsdPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.SharedDir(t, "ncmec"), "cyber_tipline.xsd")
}

// needXMLLint skips without xmllint, except in CI where its absence fails.
func needXMLLint(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("xmllint not found (CI is set): install libxml2-utils")
		}
		t.Skip("xmllint not found: install libxml2-utils (Debian) to run XSD validation tests")
	}
	return p
}

// xmllint validates doc against xsd and returns its complaint, or "".
func xmllint(t *testing.T, lint, xsd string, doc []byte) string {
	t.Helper()
	cmd := exec.Command(lint, "--noout", "--nonet", "--schema", xsd, "-")
	cmd.Stdin = bytes.NewReader(doc)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

var past = time.Date(2025, 10, 15, 8, 0, 0, 0, time.FixedZone("", -7*3600))

func minimalReport() *ncmec.Report {
	return &ncmec.Report{
		IncidentSummary: ncmec.IncidentSummary{
			IncidentType:     ncmec.IncidentChildPornography,
			IncidentDateTime: past,
		},
		Reporter: ncmec.Reporter{ReportingPerson: ncmec.Person{
			FirstName: "Trust", LastName: "Safety", Email: []ncmec.Email{{Address: "tns@example.com"}},
		}},
	}
}

// maximalReport fills every element of the schema the client models.
func maximalReport() *ncmec.Report {
	ts := past.Add(-time.Hour)
	lat, lon := 37.7749, -122.4194
	person := func(first string) ncmec.Person {
		return ncmec.Person{
			FirstName: first, LastName: "Example",
			Phone: []ncmec.Phone{{Type: "Mobile", Verified: ncmec.Bool(true), VerificationDate: &ts,
				CountryCallingCode: "+1", Extension: "42", Number: "555-0100"}},
			Email:       []ncmec.Email{{Type: "Work", Verified: ncmec.Bool(false), VerificationDate: &ts, Address: first + "@example.com"}},
			Address:     []ncmec.Address{{Type: "Business", Address: "1 Main St", City: "Springfield", ZipCode: "12345", State: "IL", Country: "US"}},
			Age:         ncmec.Int(30),
			DateOfBirth: "1995-04-01",
		}
	}
	contact := ncmec.ContactPerson{
		FirstName: "Legal", LastName: "Desk",
		Phone:   []ncmec.Phone{{Type: "Work", Number: "555-0101"}},
		Email:   []ncmec.Email{{Type: "Business", Address: "legal@example.com"}},
		Address: []ncmec.Address{{Type: "Business", Address: "1 Main St", City: "Berlin", NonUSAState: "Berlin", Country: "DE"}},
	}
	ip := ncmec.IPCaptureEvent{IPAddress: "203.0.113.7", EventName: ncmec.EventUpload, DateTime: &ts,
		PossibleProxy: ncmec.Bool(false), Port: ncmec.Int(443)}
	dev := ncmec.DeviceID{IDType: "IMEI", IDValue: "490154203237518", EventName: ncmec.EventLogin, DateTime: &ts}
	tempDisabled := &ncmec.AccountTemporarilyDisabled{DisabledDate: &ts, UserNotified: ncmec.Bool(false),
		UserNotifiedDate: &ts, ReenabledDate: &ts, Disabled: true}
	permDisabled := &ncmec.AccountPermanentlyDisabled{DisabledDate: &ts, UserNotified: ncmec.Bool(false), UserNotifiedDate: &ts, Disabled: true}
	loc := &ncmec.EstimatedLocation{Verified: ncmec.Bool(false), Timestamp: &ts, City: "Springfield", Region: "IL", CountryCode: "US"}
	assoc := ncmec.AssociatedAccount{
		Type: "Linked", Platform: &ncmec.AccountPlatform{ThirdPartyUser: ncmec.Bool(true), Name: "OtherApp"},
		FirstName: "A", MiddleName: "B", LastName: "C", ApproximateAge: ncmec.Int(40), DateOfBirth: "1985-01-02",
		Phone: []ncmec.Phone{{Number: "555-0102"}}, Email: []ncmec.Email{{Address: "alt@example.com"}},
		AllEmailsReported: ncmec.Bool(true), Address: []ncmec.Address{{City: "Paris", Country: "FR"}},
		ESPService: "chat", ESPIdentifier: "u-2", ProfileURL: []string{"https://other.example/u2"},
		ScreenName: "alt", DisplayName: []string{"Alt"}, ProfileBio: "bio", GroupIdentifier: "g-1",
		CompromisedAccount: ncmec.Bool(false), AccountTemporarilyDisabled: tempDisabled,
		AccountPermanentlyDisabled: permDisabled, IPCaptureEvent: []ncmec.IPCaptureEvent{ip},
		DeviceID: []ncmec.DeviceID{dev}, PriorCTReport: []int64{7855766}, AdditionalInfo: "linked by payment",
	}
	return &ncmec.Report{
		BatchedReport: &ncmec.BatchedReport{Reason: "VIRAL_POTENTIAL_MEME"},
		IncidentSummary: ncmec.IncidentSummary{
			IncidentType:           ncmec.IncidentChildPornography,
			Platform:               "Example Photos",
			EscalateToHighPriority: "Ongoing abuse; the uploader says the child is with them now.",
			ReportAnnotations: &ncmec.ReportAnnotations{Sextortion: true, CSAMSolicitation: true,
				MinorToMinorInteraction: true, Spam: true, SadisticOnlineExploitation: true},
			IncidentDateTime:            past,
			IncidentDateTimeDescription: "time of upload",
		},
		InternetDetails: []ncmec.InternetDetails{
			{WebPageIncident: &ncmec.WebPageIncident{ThirdPartyHostedContent: ncmec.Bool(false),
				URL: []string{"https://photos.example.com/p/1", "https://photos.example.com/p/2"}, AdditionalInfo: "album"}},
			{EmailIncident: &ncmec.EmailIncident{EmailAddress: []ncmec.Email{{Address: "x@example.com"}}, Content: "mail", AdditionalInfo: "i"}},
			{NewsgroupIncident: &ncmec.NewsgroupIncident{Name: "alt.test", EmailAddress: []ncmec.Email{{Address: "n@example.com"}}, Content: "post", AdditionalInfo: "i"}},
			{ChatIMIncident: &ncmec.ChatIMIncident{ChatClient: "ExampleChat", ChatRoomName: "room", Content: "log", AdditionalInfo: "i"}},
			{OnlineGamingIncident: &ncmec.OnlineGamingIncident{GameName: "Game", Console: "PC", Content: "c", AdditionalInfo: "i"}},
			{CellPhoneIncident: &ncmec.CellPhoneIncident{PhoneNumber: &ncmec.Phone{Number: "555-0103"}, Latitude: &lat, Longitude: &lon, AdditionalInfo: "i"}},
			{NonInternetIncident: &ncmec.NonInternetIncident{LocationName: "park", IncidentAddress: []ncmec.Address{{City: "Springfield", State: "IL"}}, AdditionalInfo: "i"}},
			{Peer2PeerIncident: &ncmec.Peer2PeerIncident{Client: "torrent", IPCaptureEvent: []ncmec.IPCaptureEvent{ip}, FileNames: "a.jpg", AdditionalInfo: "i"}},
		},
		LawEnforcement: &ncmec.LawEnforcement{
			AgencyName: "Springfield PD", CaseNumber: "2025-1", OfficerContact: &contact,
			ReportedToLE: ncmec.Bool(true), ServedLegalProcessDomestic: ncmec.Bool(false),
			ServedLegalProcessInternational: &ncmec.LegalProcessInternational{FLEACountry: "DE", Served: false},
		},
		Reporter: ncmec.Reporter{
			ReportingPerson: person("reporter"), ContactPerson: &contact,
			CompanyTemplate: "Serve legal process at legal@example.com.", TermsOfService: "https://example.com/tos",
			LegalURL: "https://example.com/legal",
		},
		PersonOrUserReported: []ncmec.PersonOrUserReported{{
			PersonOrUserReportedPerson: &ncmec.Person{FirstName: "Up", LastName: "Loader", Email: []ncmec.Email{{Address: "up@example.com"}}},
			VehicleDescription:         "none", ESPIdentifier: "u-1", ESPService: "photos", CompromisedAccount: ncmec.Bool(false),
			ScreenName: "uploader", DisplayName: []string{"Up"}, ProfileURL: []string{"https://photos.example.com/u/1"},
			ProfileBio: "bio", IPCaptureEvent: []ncmec.IPCaptureEvent{ip}, DeviceID: []ncmec.DeviceID{dev},
			ThirdPartyUserReported: ncmec.Bool(false), PriorCTReports: []int64{7855766, 7855767}, GroupIdentifier: "g-1",
			AccountTemporarilyDisabled: tempDisabled, AccountPermanentlyDisabled: permDisabled, EstimatedLocation: loc,
			AllEmailsReported: ncmec.Bool(true), AssociatedAccount: []ncmec.AssociatedAccount{assoc}, AdditionalInfo: "locked",
		}},
		IntendedRecipient: []ncmec.IntendedRecipient{{
			IntendedRecipientPerson: &ncmec.Person{FirstName: "Re", LastName: "Cipient"},
			ESPIdentifier:           "u-3", ESPService: "chat", CompromisedAccount: ncmec.Bool(false), ScreenName: "rcpt",
			DisplayName: []string{"R"}, ProfileURL: []string{"https://photos.example.com/u/3"}, ProfileBio: "bio",
			IPCaptureEvent: []ncmec.IPCaptureEvent{ip}, DeviceID: []ncmec.DeviceID{dev}, PriorCTReports: []int64{1},
			GroupIdentifier: "g", AccountTemporarilyDisabled: tempDisabled, AccountPermanentlyDisabled: permDisabled,
			EstimatedLocation: loc, AllEmailsReported: ncmec.Bool(false), AdditionalInfo: []string{"one", "two"},
		}},
		Victim: []ncmec.Victim{{
			VictimPerson:  person("victim"),
			ESPIdentifier: "u-4", ESPService: "photos", CompromisedAccount: ncmec.Bool(false), ScreenName: "v",
			DisplayName: []string{"V"}, ProfileURL: []string{"https://photos.example.com/u/4"}, ProfileBio: "bio",
			IPCaptureEvent: []ncmec.IPCaptureEvent{ip}, DeviceID: []ncmec.DeviceID{dev}, SchoolName: "school",
			PriorCTReports: []int64{2}, AccountTemporarilyDisabled: tempDisabled, AccountPermanentlyDisabled: permDisabled,
			EstimatedLocation: loc, AllEmailsReported: ncmec.Bool(false), AssociatedAccount: []ncmec.AssociatedAccount{assoc},
			AdditionalInfo: "victim info",
		}},
		AdditionalInfo: "Filed by takedown. Ünïcödé survives.",
	}
}

func maximalFileDetails(reportID int64, fileID string) *ncmec.FileDetails {
	ts := past.Add(-2 * time.Hour)
	return &ncmec.FileDetails{
		ReportID: reportID, FileID: fileID,
		FileName: "evidence-1.jpg", OriginalFileName: "IMG_0001.jpg", UploadedToESPTimestamp: &ts,
		LocationOfFile: "https://photos.example.com/p/1", FileViewedByESP: ncmec.Bool(true),
		EXIFViewedByESP: ncmec.Bool(false), PubliclyAvailable: ncmec.Bool(false),
		FileRelevance: ncmec.RelevanceReported,
		FileAnnotations: &ncmec.FileAnnotations{AnimeDrawingVirtualHentai: true, PotentialMeme: true, Viral: true,
			PossibleSelfProduction: true, PhysicalHarm: true, ViolenceGore: true, Bestiality: true,
			LiveStreaming: true, Infant: true, GenerativeAI: true},
		IndustryClassification: ncmec.ClassA1,
		OriginalFileHash: []ncmec.Hash{
			{Type: ncmec.HashMD5, Value: "d41d8cd98f00b204e9800998ecf8427e"},
			{Type: ncmec.HashSHA1, Value: "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
			{Type: ncmec.HashSHA256, Value: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
			{Type: ncmec.HashPDQ, Value: strings.Repeat("f0", 32)},
		},
		IPCaptureEvent: &ncmec.IPCaptureEvent{IPAddress: "203.0.113.7", EventName: ncmec.EventUpload, DateTime: &ts},
		DeviceID:       []ncmec.DeviceID{{IDType: "IMEI", IDValue: "490154203237518"}},
		Details: []ncmec.Details{
			{Type: "EXIF", Pairs: []ncmec.NameValue{{Name: "Model", Value: "Phone"}}},
			{Type: "HASH", Pairs: []ncmec.NameValue{{Name: "PhotoDNA", Value: "abc"}}},
		},
		AdditionalInfo: []string{"viral video", "second note"},
	}
}

// fakeClock is an injectable clock for expiry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
