package sfsim

import (
	"fmt"
	"slices"
	"strings"
)

// ObjectSchema declares one sObject the simulator stores. It is also the
// JSON form of the schema file cmd/sfsim reads.
type ObjectSchema struct {
	Name  string `json:"name"`            // API name, e.g. "Case", "Evidence_File__c"
	Label string `json:"label,omitempty"` // defaults to Name
	// KeyPrefix is the 3-character id prefix ("500" for Case, "a0…" for
	// custom objects).
	KeyPrefix string  `json:"keyPrefix"`
	Fields    []Field `json:"fields"`
}

// Field declares one field. Id, CreatedDate, LastModifiedDate and
// SystemModstamp are added to every object.
type Field struct {
	Name  string `json:"name"`
	Label string `json:"label,omitempty"`
	// Type is a Salesforce field type: string, textarea, email, url, phone,
	// picklist, multipicklist, boolean, double, int, date, datetime,
	// reference, autonumber.
	Type string `json:"type"`
	// Length is the maximum number of characters of text types (STRING_TOO_LONG).
	Length int `json:"length,omitempty"`
	// Required fields must have a value on create and cannot be set to null
	// (REQUIRED_FIELD_MISSING).
	Required   bool `json:"required,omitempty"`
	ExternalID bool `json:"externalId,omitempty"`
	// Unique values are compared case-insensitively (DUPLICATE_VALUE).
	Unique bool `json:"unique,omitempty"`
	// Picklist values; with Restricted, other values are refused
	// (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST).
	Picklist   []string `json:"picklist,omitempty"`
	Restricted bool     `json:"restricted,omitempty"`
	// Default is the picklist value set on create when none is given.
	Default string `json:"default,omitempty"`
	// ReferenceTo names the parent object of a reference field;
	// RelationshipName is its __r name.
	ReferenceTo      string `json:"referenceTo,omitempty"`
	RelationshipName string `json:"relationshipName,omitempty"`
	// ReadOnly fields cannot be written through the API
	// (INVALID_FIELD_FOR_INSERT_UPDATE); autonumber fields always are.
	ReadOnly bool `json:"readOnly,omitempty"`
}

func (f *Field) writable() bool { return !f.ReadOnly && f.Type != "autonumber" && f.Type != "id" }

func (f *Field) label() string {
	if f.Label != "" {
		return f.Label
	}
	return f.Name
}

var textTypes = map[string]bool{
	"string": true, "textarea": true, "email": true, "url": true, "phone": true,
	"picklist": true, "multipicklist": true, "reference": true, "id": true, "autonumber": true,
}

var knownTypes = map[string]bool{
	"string": true, "textarea": true, "email": true, "url": true, "phone": true,
	"picklist": true, "multipicklist": true, "boolean": true, "double": true,
	"int": true, "date": true, "datetime": true, "reference": true, "autonumber": true,
}

// systemFields are present on every object and written only by the server.
func systemFields() []Field {
	return []Field{
		{Name: "Id", Label: "Record ID", Type: "id", Length: 18, ReadOnly: true},
		{Name: "CreatedDate", Label: "Created Date", Type: "datetime", ReadOnly: true},
		{Name: "LastModifiedDate", Label: "Last Modified Date", Type: "datetime", ReadOnly: true},
		{Name: "SystemModstamp", Label: "System Modstamp", Type: "datetime", ReadOnly: true},
	}
}

// validateSchema checks a schema before the server uses it, so a bad
// schema file fails at start with a message naming the problem.
func validateSchema(objects []ObjectSchema) error {
	if len(objects) == 0 {
		return fmt.Errorf("schema: no objects")
	}
	names := map[string]bool{}
	prefixes := map[string]bool{}
	for _, o := range objects {
		if o.Name == "" {
			return fmt.Errorf("schema: object without a name")
		}
		lname := strings.ToLower(o.Name)
		if names[lname] {
			return fmt.Errorf("schema: object %s declared twice", o.Name)
		}
		names[lname] = true
		if len(o.KeyPrefix) != 3 || !isAlnum(o.KeyPrefix) {
			return fmt.Errorf("schema: object %s: keyPrefix %q must be 3 letters or digits", o.Name, o.KeyPrefix)
		}
		if prefixes[o.KeyPrefix] {
			return fmt.Errorf("schema: object %s: keyPrefix %s used twice", o.Name, o.KeyPrefix)
		}
		prefixes[o.KeyPrefix] = true
	}
	for _, o := range objects {
		fields := map[string]bool{"id": true, "createddate": true, "lastmodifieddate": true, "systemmodstamp": true}
		for _, f := range o.Fields {
			where := fmt.Sprintf("schema: %s.%s", o.Name, f.Name)
			if f.Name == "" {
				return fmt.Errorf("schema: object %s has a field without a name", o.Name)
			}
			if fields[strings.ToLower(f.Name)] {
				return fmt.Errorf("%s: declared twice or reserved", where)
			}
			fields[strings.ToLower(f.Name)] = true
			if !knownTypes[f.Type] {
				return fmt.Errorf("%s: unknown type %q", where, f.Type)
			}
			if textTypes[f.Type] && f.Type != "reference" && f.Type != "autonumber" && f.Type != "picklist" && f.Type != "multipicklist" && f.Length <= 0 {
				return fmt.Errorf("%s: text field needs a length", where)
			}
			if f.ExternalID && !slices.Contains([]string{"string", "email", "int", "double", "autonumber"}, f.Type) {
				return fmt.Errorf("%s: an external id must be text, email, number or autonumber", where)
			}
			if f.Type == "reference" && !names[strings.ToLower(f.ReferenceTo)] {
				return fmt.Errorf("%s: references unknown object %q", where, f.ReferenceTo)
			}
			if f.Default != "" && !slices.Contains(f.Picklist, f.Default) {
				return fmt.Errorf("%s: default %q is not one of its picklist values", where, f.Default)
			}
		}
	}
	return nil
}

func isAlnum(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// Names of the default schema, which the case-writer's default
// configuration uses.
const (
	CaseObject       = "Case"
	CaseReportID     = "Takedown_Report_Id__c"
	FileObject       = "Evidence_File__c"
	FileID           = "Takedown_File_Id__c"
	FileCase         = "Case__c"
	FileRelationship = "Evidence_Files__r"
)

// DefaultSchema is a Case and one child record per evidence file, holding
// what the old tool kept in its CRM and logs (API.md §6): report id, NCMEC
// report id, project, uploader, staff reporter, legal approval, the
// "actions taken" statements, test flag, dates; per file the name, size,
// upload time, uploader, hashes and NCMEC file id. Never the media itself.
func DefaultSchema() []ObjectSchema {
	return []ObjectSchema{
		{
			Name: CaseObject, KeyPrefix: "500",
			Fields: []Field{
				{Name: "CaseNumber", Label: "Case Number", Type: "autonumber", Length: 30},
				{Name: "Subject", Type: "string", Length: 255},
				{Name: "Description", Type: "textarea", Length: 32000},
				{Name: "Status", Type: "picklist", Picklist: []string{"New", "Working", "Escalated", "Closed"}, Restricted: true, Default: "New"},
				{Name: "Origin", Label: "Case Origin", Type: "picklist", Picklist: []string{"Phone", "Email", "Web", "Takedown Tool"}, Restricted: true},
				{Name: "Priority", Type: "picklist", Picklist: []string{"High", "Medium", "Low"}, Restricted: true, Default: "Medium"},
				{Name: "Type", Label: "Case Type", Type: "picklist", Picklist: []string{"Child Protection", "DMCA"}, Restricted: true},
				// Our report id (UUIDv7): the key every write upserts by.
				{Name: CaseReportID, Label: "Takedown Report Id", Type: "string", Length: 36, Required: true, ExternalID: true, Unique: true},
				{Name: "NCMEC_Report_Id__c", Label: "NCMEC Report Id", Type: "string", Length: 20},
				{Name: "NCMEC_Status__c", Label: "NCMEC Status", Type: "picklist", Picklist: []string{"Pending", "Opened", "Finished", "Failed", "Retracted"}, Restricted: true, Default: "Pending"},
				{Name: "NCMEC_Finished_At__c", Label: "NCMEC Finished At", Type: "datetime"},
				{Name: "Incident_Type__c", Label: "Incident Type", Type: "string", Length: 255},
				{Name: "Incident_Time__c", Label: "Incident Time", Type: "datetime"},
				{Name: "Project__c", Label: "Project", Type: "string", Length: 255},
				{Name: "Uploader_Username__c", Label: "Uploader Username", Type: "string", Length: 255},
				{Name: "Reporter__c", Label: "Reporter", Type: "string", Length: 255},
				{Name: "Reported_At__c", Label: "Reported At", Type: "datetime"},
				{Name: "Legal_Approved__c", Label: "Legal Approved", Type: "boolean"},
				{Name: "Legal_Approver__c", Label: "Legal Approver", Type: "string", Length: 255},
				{Name: "Not_Approved_Reason__c", Label: "Not Approved Reason", Type: "textarea", Length: 4000},
				{Name: "Actions_Taken__c", Label: "Actions Taken", Type: "textarea", Length: 4000},
				{Name: "Escalation_Reason__c", Label: "Escalation Reason", Type: "textarea", Length: 4000},
				// Staff's private note: never sent to NCMEC.
				{Name: "Private_Note__c", Label: "Private Note", Type: "textarea", Length: 4000},
				{Name: "File_Count__c", Label: "File Count", Type: "double"},
				{Name: "Is_Test__c", Label: "Test", Type: "boolean"},
			},
		},
		{
			Name: FileObject, Label: "Evidence File", KeyPrefix: "a0E",
			Fields: []Field{
				{Name: FileCase, Label: "Case", Type: "reference", ReferenceTo: CaseObject, RelationshipName: "Case__r", Required: true},
				// Our file id (UUIDv7), unique across reports.
				{Name: FileID, Label: "Takedown File Id", Type: "string", Length: 36, Required: true, ExternalID: true, Unique: true},
				{Name: "File_Name__c", Label: "File Name", Type: "string", Length: 255},
				{Name: "Content_Type__c", Label: "Content Type", Type: "string", Length: 255},
				{Name: "Size_Bytes__c", Label: "Size (bytes)", Type: "double"},
				{Name: "MD5__c", Label: "MD5", Type: "string", Length: 32},
				{Name: "SHA1__c", Label: "SHA-1", Type: "string", Length: 40},
				{Name: "SHA256__c", Label: "SHA-256", Type: "string", Length: 64},
				{Name: "PDQ__c", Label: "PDQ", Type: "string", Length: 64},
				{Name: "Uploaded_At__c", Label: "Uploaded At", Type: "datetime"},
				{Name: "Uploader__c", Label: "Uploader", Type: "string", Length: 255},
				{Name: "NCMEC_Report_Id__c", Label: "NCMEC Report Id", Type: "string", Length: 20},
				{Name: "NCMEC_File_Id__c", Label: "NCMEC File Id", Type: "string", Length: 255},
				{Name: "NCMEC_Status__c", Label: "NCMEC Status", Type: "picklist", Picklist: []string{"Pending", "Uploaded", "Finished", "Failed", "Retracted"}, Restricted: true, Default: "Pending"},
			},
		},
	}
}
