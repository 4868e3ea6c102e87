package ncmec

import (
	"encoding/xml"
	"time"
)

// The types below mirror NCMEC's schema (cyber_tipline.xsd, 2025-11). Field
// order is the XSD sequence order and must stay so: encoding/xml writes
// fields in struct order and NCMEC answers 4100 to children out of order.
// Optional values are pointers, empty strings or nil slices, so that nothing
// the caller did not set is sent; optional booleans are *bool because "false"
// is information (e.g. fileViewedByEsp=false matters in court, see
// United States v. Wilson).

// Incident types: the exact strings of the XSD enumeration.
const (
	IncidentChildPornography     = "Child Pornography (possession, manufacture, and distribution)"
	IncidentChildSexTrafficking  = "Child Sex Trafficking"
	IncidentChildSexTourism      = "Child Sex Tourism"
	IncidentChildSexMolestation  = "Child Sexual Molestation"
	IncidentMisleadingDomainName = "Misleading Domain Name"
	IncidentMisleadingWords      = "Misleading Words or Digital Images on the Internet"
	IncidentOnlineEnticement     = "Online Enticement of Children for Sexual Acts"
	IncidentUnsolicitedObscene   = "Unsolicited Obscene Material Sent to a Child"
)

// IP capture and device event names (ipCaptureType).
const (
	EventLogin        = "Login"
	EventRegistration = "Registration"
	EventPurchase     = "Purchase"
	EventUpload       = "Upload"
	EventOther        = "Other"
	EventUnknown      = "Unknown"
)

// Bool returns a pointer to b, for the optional booleans of the schema.
func Bool(b bool) *bool { return &b }

// Int returns a pointer to n.
func Int(n int) *int { return &n }

// Time returns a pointer to t.
func Time(t time.Time) *time.Time { return &t }

// Report is the <report> document sent to /submit.
type Report struct {
	XMLName              xml.Name               `xml:"report"`
	BatchedReport        *BatchedReport         `xml:"batchedReport,omitempty"`
	IncidentSummary      IncidentSummary        `xml:"incidentSummary"`
	InternetDetails      []InternetDetails      `xml:"internetDetails,omitempty"`
	LawEnforcement       *LawEnforcement        `xml:"lawEnforcement,omitempty"`
	Reporter             Reporter               `xml:"reporter"`
	PersonOrUserReported []PersonOrUserReported `xml:"personOrUserReported,omitempty"`
	IntendedRecipient    []IntendedRecipient    `xml:"intendedRecipient,omitempty"`
	Victim               []Victim               `xml:"victim,omitempty"`
	AdditionalInfo       string                 `xml:"additionalInfo,omitempty"`
}

// BatchedReport marks a report that groups otherwise individual reports.
type BatchedReport struct {
	Reason string `xml:"reason,attr"` // "VIRAL_POTENTIAL_MEME"
}

// IncidentSummary is required in every report.
type IncidentSummary struct {
	IncidentType string `xml:"incidentType"`
	Platform     string `xml:"platform,omitempty"`
	// EscalateToHighPriority is the reason for escalation; set it only to
	// escalate.
	EscalateToHighPriority      string             `xml:"escalateToHighPriority,omitempty"`
	ReportAnnotations           *ReportAnnotations `xml:"reportAnnotations,omitempty"`
	IncidentDateTime            time.Time          `xml:"incidentDateTime"` // must be in the past
	IncidentDateTimeDescription string             `xml:"incidentDateTimeDescription,omitempty"`
}

// ReportAnnotations are flags; the schema fixes each to "true", so a false
// flag is simply left out.
type ReportAnnotations struct {
	Sextortion                 bool `xml:"sextortion,omitempty"`
	CSAMSolicitation           bool `xml:"csamSolicitation,omitempty"`
	MinorToMinorInteraction    bool `xml:"minorToMinorInteraction,omitempty"`
	Spam                       bool `xml:"spam,omitempty"`
	SadisticOnlineExploitation bool `xml:"sadisticOnlineExploitation,omitempty"`
}

// InternetDetails holds exactly one incident subtype (an XSD choice); send
// one InternetDetails per subtype.
type InternetDetails struct {
	WebPageIncident      *WebPageIncident      `xml:"webPageIncident,omitempty"`
	EmailIncident        *EmailIncident        `xml:"emailIncident,omitempty"`
	NewsgroupIncident    *NewsgroupIncident    `xml:"newsgroupIncident,omitempty"`
	ChatIMIncident       *ChatIMIncident       `xml:"chatImIncident,omitempty"`
	OnlineGamingIncident *OnlineGamingIncident `xml:"onlineGamingIncident,omitempty"`
	CellPhoneIncident    *CellPhoneIncident    `xml:"cellPhoneIncident,omitempty"`
	NonInternetIncident  *NonInternetIncident  `xml:"nonInternetIncident,omitempty"`
	Peer2PeerIncident    *Peer2PeerIncident    `xml:"peer2peerIncident,omitempty"`
}

// WebPageIncident lists the URLs where the content was found.
type WebPageIncident struct {
	ThirdPartyHostedContent *bool    `xml:"thirdPartyHostedContent,attr,omitempty"`
	URL                     []string `xml:"url,omitempty"`
	AdditionalInfo          string   `xml:"additionalInfo,omitempty"`
}

type EmailIncident struct {
	EmailAddress   []Email `xml:"emailAddress,omitempty"`
	Content        string  `xml:"content,omitempty"`
	AdditionalInfo string  `xml:"additionalInfo,omitempty"`
}

type NewsgroupIncident struct {
	Name           string  `xml:"name,omitempty"`
	EmailAddress   []Email `xml:"emailAddress,omitempty"`
	Content        string  `xml:"content,omitempty"`
	AdditionalInfo string  `xml:"additionalInfo,omitempty"`
}

type ChatIMIncident struct {
	ChatClient     string `xml:"chatClient,omitempty"`
	ChatRoomName   string `xml:"chatRoomName,omitempty"`
	Content        string `xml:"content,omitempty"`
	AdditionalInfo string `xml:"additionalInfo,omitempty"`
}

type OnlineGamingIncident struct {
	GameName       string `xml:"gameName,omitempty"`
	Console        string `xml:"console,omitempty"`
	Content        string `xml:"content,omitempty"`
	AdditionalInfo string `xml:"additionalInfo,omitempty"`
}

type CellPhoneIncident struct {
	PhoneNumber    *Phone   `xml:"phoneNumber,omitempty"`
	Latitude       *float64 `xml:"latitude,omitempty"`
	Longitude      *float64 `xml:"longitude,omitempty"`
	AdditionalInfo string   `xml:"additionalInfo,omitempty"`
}

type NonInternetIncident struct {
	LocationName    string    `xml:"locationName,omitempty"`
	IncidentAddress []Address `xml:"incidentAddress,omitempty"`
	AdditionalInfo  string    `xml:"additionalInfo,omitempty"`
}

type Peer2PeerIncident struct {
	Client         string           `xml:"client,omitempty"`
	IPCaptureEvent []IPCaptureEvent `xml:"ipCaptureEvent,omitempty"`
	FileNames      string           `xml:"fileNames,omitempty"`
	AdditionalInfo string           `xml:"additionalInfo,omitempty"`
}

// LawEnforcement is set when law enforcement is already involved.
type LawEnforcement struct {
	AgencyName                      string                     `xml:"agencyName"`
	CaseNumber                      string                     `xml:"caseNumber,omitempty"`
	OfficerContact                  *ContactPerson             `xml:"officerContact,omitempty"`
	ReportedToLE                    *bool                      `xml:"reportedToLe,omitempty"`
	ServedLegalProcessDomestic      *bool                      `xml:"servedLegalProcessDomestic,omitempty"`
	ServedLegalProcessInternational *LegalProcessInternational `xml:"servedLegalProcessInternational,omitempty"`
}

type LegalProcessInternational struct {
	FLEACountry string `xml:"fleaCountry,attr,omitempty"`
	Served      bool   `xml:",chardata"`
}

// Reporter is the company filing the report. NCMEC's documentation asks for
// an email on the reporting person although the XSD does not require one.
type Reporter struct {
	ReportingPerson Person         `xml:"reportingPerson"`
	ContactPerson   *ContactPerson `xml:"contactPerson,omitempty"`
	CompanyTemplate string         `xml:"companyTemplate,omitempty"`
	TermsOfService  string         `xml:"termsOfService,omitempty"`
	LegalURL        string         `xml:"legalURL,omitempty"`
}

// Person is the XSD "person" type.
type Person struct {
	FirstName   string    `xml:"firstName,omitempty"`
	LastName    string    `xml:"lastName,omitempty"`
	Phone       []Phone   `xml:"phone,omitempty"`
	Email       []Email   `xml:"email,omitempty"`
	Address     []Address `xml:"address,omitempty"`
	Age         *int      `xml:"age,omitempty"`
	DateOfBirth string    `xml:"dateOfBirth,omitempty"` // xs:date, YYYY-MM-DD
}

// ContactPerson is the XSD "contactPerson" type (a person without age).
type ContactPerson struct {
	FirstName string    `xml:"firstName,omitempty"`
	LastName  string    `xml:"lastName,omitempty"`
	Phone     []Phone   `xml:"phone,omitempty"`
	Email     []Email   `xml:"email,omitempty"`
	Address   []Address `xml:"address,omitempty"`
}

type Address struct {
	Type        string `xml:"type,attr,omitempty"` // Home, Business, Billing, Shipping, Technical
	Address     string `xml:"address,omitempty"`
	City        string `xml:"city,omitempty"`
	ZipCode     string `xml:"zipCode,omitempty"`
	State       string `xml:"state,omitempty"` // US two-letter code
	NonUSAState string `xml:"nonUsaState,omitempty"`
	Country     string `xml:"country,omitempty"` // ISO 3166 two-letter code
}

type Email struct {
	Type             string     `xml:"type,attr,omitempty"` // Home, Work, Business, Recovery
	Verified         *bool      `xml:"verified,attr,omitempty"`
	VerificationDate *time.Time `xml:"verificationDate,attr,omitempty"`
	Address          string     `xml:",chardata"`
}

type Phone struct {
	Type               string     `xml:"type,attr,omitempty"` // Mobile, Home, Business, Work, Fax, Internet, Recovery
	Verified           *bool      `xml:"verified,attr,omitempty"`
	VerificationDate   *time.Time `xml:"verificationDate,attr,omitempty"`
	CountryCallingCode string     `xml:"countryCallingCode,attr,omitempty"` // "+1"
	Extension          string     `xml:"extension,attr,omitempty"`          // digits
	Number             string     `xml:",chardata"`
}

// PersonOrUserReported is the account or person the report is about. NCMEC
// documents 0 or 1 per report although the XSD allows more.
type PersonOrUserReported struct {
	PersonOrUserReportedPerson *Person                     `xml:"personOrUserReportedPerson,omitempty"`
	VehicleDescription         string                      `xml:"vehicleDescription,omitempty"`
	ESPIdentifier              string                      `xml:"espIdentifier,omitempty"`
	ESPService                 string                      `xml:"espService,omitempty"`
	CompromisedAccount         *bool                       `xml:"compromisedAccount,omitempty"`
	ScreenName                 string                      `xml:"screenName,omitempty"`
	DisplayName                []string                    `xml:"displayName,omitempty"`
	ProfileURL                 []string                    `xml:"profileUrl,omitempty"`
	ProfileBio                 string                      `xml:"profileBio,omitempty"`
	IPCaptureEvent             []IPCaptureEvent            `xml:"ipCaptureEvent,omitempty"`
	DeviceID                   []DeviceID                  `xml:"deviceId,omitempty"`
	ThirdPartyUserReported     *bool                       `xml:"thirdPartyUserReported,omitempty"`
	PriorCTReports             []int64                     `xml:"priorCTReports,omitempty"`
	GroupIdentifier            string                      `xml:"groupIdentifier,omitempty"`
	AccountTemporarilyDisabled *AccountTemporarilyDisabled `xml:"accountTemporarilyDisabled,omitempty"`
	AccountPermanentlyDisabled *AccountPermanentlyDisabled `xml:"accountPermanentlyDisabled,omitempty"`
	EstimatedLocation          *EstimatedLocation          `xml:"estimatedLocation,omitempty"`
	AllEmailsReported          *bool                       `xml:"allEmailsReported,omitempty"`
	AssociatedAccount          []AssociatedAccount         `xml:"associatedAccount,omitempty"`
	AdditionalInfo             string                      `xml:"additionalInfo,omitempty"`
}

// IntendedRecipient is the person the content was sent to.
type IntendedRecipient struct {
	IntendedRecipientPerson    *Person                     `xml:"intendedRecipientPerson,omitempty"`
	ESPIdentifier              string                      `xml:"espIdentifier,omitempty"`
	ESPService                 string                      `xml:"espService,omitempty"`
	CompromisedAccount         *bool                       `xml:"compromisedAccount,omitempty"`
	ScreenName                 string                      `xml:"screenName,omitempty"`
	DisplayName                []string                    `xml:"displayName,omitempty"`
	ProfileURL                 []string                    `xml:"profileUrl,omitempty"`
	ProfileBio                 string                      `xml:"profileBio,omitempty"`
	IPCaptureEvent             []IPCaptureEvent            `xml:"ipCaptureEvent,omitempty"`
	DeviceID                   []DeviceID                  `xml:"deviceId,omitempty"`
	PriorCTReports             []int64                     `xml:"priorCTReports,omitempty"`
	GroupIdentifier            string                      `xml:"groupIdentifier,omitempty"`
	AccountTemporarilyDisabled *AccountTemporarilyDisabled `xml:"accountTemporarilyDisabled,omitempty"`
	AccountPermanentlyDisabled *AccountPermanentlyDisabled `xml:"accountPermanentlyDisabled,omitempty"`
	EstimatedLocation          *EstimatedLocation          `xml:"estimatedLocation,omitempty"`
	AllEmailsReported          *bool                       `xml:"allEmailsReported,omitempty"`
	AdditionalInfo             []string                    `xml:"additionalInfo,omitempty"`
}

// Victim is a child depicted or involved.
type Victim struct {
	VictimPerson               Person                      `xml:"victimPerson"`
	ESPIdentifier              string                      `xml:"espIdentifier,omitempty"`
	ESPService                 string                      `xml:"espService,omitempty"`
	CompromisedAccount         *bool                       `xml:"compromisedAccount,omitempty"`
	ScreenName                 string                      `xml:"screenName,omitempty"`
	DisplayName                []string                    `xml:"displayName,omitempty"`
	ProfileURL                 []string                    `xml:"profileUrl,omitempty"`
	ProfileBio                 string                      `xml:"profileBio,omitempty"`
	IPCaptureEvent             []IPCaptureEvent            `xml:"ipCaptureEvent,omitempty"`
	DeviceID                   []DeviceID                  `xml:"deviceId,omitempty"`
	SchoolName                 string                      `xml:"schoolName,omitempty"`
	PriorCTReports             []int64                     `xml:"priorCTReports,omitempty"`
	AccountTemporarilyDisabled *AccountTemporarilyDisabled `xml:"accountTemporarilyDisabled,omitempty"`
	AccountPermanentlyDisabled *AccountPermanentlyDisabled `xml:"accountPermanentlyDisabled,omitempty"`
	EstimatedLocation          *EstimatedLocation          `xml:"estimatedLocation,omitempty"`
	AllEmailsReported          *bool                       `xml:"allEmailsReported,omitempty"`
	AssociatedAccount          []AssociatedAccount         `xml:"associatedAccount,omitempty"`
	AdditionalInfo             string                      `xml:"additionalInfo,omitempty"`
}

type AccountTemporarilyDisabled struct {
	DisabledDate     *time.Time `xml:"disabledDate,attr,omitempty"`
	UserNotified     *bool      `xml:"userNotified,attr,omitempty"`
	UserNotifiedDate *time.Time `xml:"userNotifiedDate,attr,omitempty"`
	ReenabledDate    *time.Time `xml:"reenabledDate,attr,omitempty"`
	Disabled         bool       `xml:",chardata"`
}

type AccountPermanentlyDisabled struct {
	DisabledDate     *time.Time `xml:"disabledDate,attr,omitempty"`
	UserNotified     *bool      `xml:"userNotified,attr,omitempty"`
	UserNotifiedDate *time.Time `xml:"userNotifiedDate,attr,omitempty"`
	Disabled         bool       `xml:",chardata"`
}

type EstimatedLocation struct {
	Verified    *bool      `xml:"verified,attr,omitempty"`
	Timestamp   *time.Time `xml:"timestamp,attr,omitempty"`
	City        string     `xml:"city,omitempty"`
	Region      string     `xml:"region,omitempty"`
	CountryCode string     `xml:"countryCode,omitempty"`
}

// AssociatedAccount is another account linked to a person. Note the
// singular priorCTReport here, as in the XSD.
type AssociatedAccount struct {
	Type                       string                      `xml:"type,attr"` // required: Billing, Linked, Business, Creator, Parent/Guardian, Other
	Platform                   *AccountPlatform            `xml:"platform,omitempty"`
	FirstName                  string                      `xml:"firstName,omitempty"`
	MiddleName                 string                      `xml:"middleName,omitempty"`
	LastName                   string                      `xml:"lastName,omitempty"`
	ApproximateAge             *int                        `xml:"approximateAge,omitempty"`
	DateOfBirth                string                      `xml:"dateOfBirth,omitempty"` // YYYY-MM-DD
	Phone                      []Phone                     `xml:"phone,omitempty"`
	Email                      []Email                     `xml:"email,omitempty"`
	AllEmailsReported          *bool                       `xml:"allEmailsReported,omitempty"`
	Address                    []Address                   `xml:"address,omitempty"`
	ESPService                 string                      `xml:"espService,omitempty"`
	ESPIdentifier              string                      `xml:"espIdentifier,omitempty"`
	ProfileURL                 []string                    `xml:"profileUrl,omitempty"`
	ScreenName                 string                      `xml:"screenName,omitempty"`
	DisplayName                []string                    `xml:"displayName,omitempty"`
	ProfileBio                 string                      `xml:"profileBio,omitempty"`
	GroupIdentifier            string                      `xml:"groupIdentifier,omitempty"`
	CompromisedAccount         *bool                       `xml:"compromisedAccount,omitempty"`
	AccountTemporarilyDisabled *AccountTemporarilyDisabled `xml:"accountTemporarilyDisabled,omitempty"`
	AccountPermanentlyDisabled *AccountPermanentlyDisabled `xml:"accountPermanentlyDisabled,omitempty"`
	IPCaptureEvent             []IPCaptureEvent            `xml:"ipCaptureEvent,omitempty"`
	DeviceID                   []DeviceID                  `xml:"deviceId,omitempty"`
	PriorCTReport              []int64                     `xml:"priorCTReport,omitempty"`
	AdditionalInfo             string                      `xml:"additionalInfo,omitempty"`
}

type AccountPlatform struct {
	ThirdPartyUser *bool  `xml:"thirdPartyUser,attr,omitempty"`
	Name           string `xml:",chardata"`
}

// IPCaptureEvent is an IP address seen at an event (login, upload, …).
type IPCaptureEvent struct {
	IPAddress     string     `xml:"ipAddress"`
	EventName     string     `xml:"eventName,omitempty"`
	DateTime      *time.Time `xml:"dateTime,omitempty"`
	PossibleProxy *bool      `xml:"possibleProxy,omitempty"`
	Port          *int       `xml:"port,omitempty"`
}

type DeviceID struct {
	IDType    string     `xml:"idType"`
	IDValue   string     `xml:"idValue"`
	EventName string     `xml:"eventName,omitempty"`
	DateTime  *time.Time `xml:"dateTime,omitempty"`
}
