package reportrules

import "strings"

// Action is one of the "actions taken" choices of the report form: an
// action against the content or the account, or one of the old tool's
// checked statements.
type Action struct {
	Text string
	// Internal marks a statement that is a fact for us (this system and the
	// case), not something NCMEC is told: see Actions.
	Internal bool
}

// Actions are the choices the form offers, in its order. Reports may name
// others (the API takes free strings); those are treated as actions.
//
// What goes to NCMEC: the CyberTipline XSD (/work/shared/ncmec/
// cyber_tipline.xsd) has no element for the reporter's actions at all, no
// actionTaken or similar; the only place they can go is the report's
// free-text additionalInfo, where the NCMEC builder writes "Actions taken:
// …" because what we did to the content and the account is of use to
// NCMEC's analysts and law enforcement. The old tool's two statements have
// no place there either and are not of that kind: "e-mail sent to legal for
// deletion" records our internal step of asking legal to delete the
// preserved image, and "CheckUser data included" records that we gathered
// the uploader's CheckUser data, which, when it is sent, goes to NCMEC as
// what it is (the uploader's IP capture events), not as a sentence. Both are
// Internal: kept in this system and the case (Actions_Taken__c), never in
// the XML.
var Actions = []Action{
	{Text: "content removed"},
	{Text: "account locked"},
	{Text: "account banned"},
	{Text: "upload blocked"},
	{Text: "preserved for law enforcement"},
	{Text: "e-mail sent to legal for deletion", Internal: true},
	{Text: "CheckUser data included", Internal: true},
}

// IsInternal reports whether action is one of the internal statements. The
// comparison ignores case and surrounding space, so a statement typed by
// an API client in other capitals still stays out of NCMEC's report.
func IsInternal(action string) bool {
	action = strings.TrimSpace(action)
	for _, a := range Actions {
		if a.Internal && strings.EqualFold(a.Text, action) {
			return true
		}
	}
	return false
}

// ForNCMEC returns the actions that may be sent to NCMEC: actions without
// the internal statements, in their order.
func ForNCMEC(actions []string) []string {
	var out []string
	for _, a := range actions {
		if !IsInternal(a) {
			out = append(out, a)
		}
	}
	return out
}
