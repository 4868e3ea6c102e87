package ncmec

import (
	"context"
	"fmt"
)

// Connection states of an environment, as CheckConnection finds them and the
// ncmec.connection event carries them.
const (
	// ConnectionOK: /status answered and accepted the credentials.
	ConnectionOK = "ok"
	// ConnectionRefused: NCMEC refused the credentials or their
	// permissions (IsAuth). Every call fails until they are fixed.
	ConnectionRefused = "refused"
	// ConnectionUnreachable: no answer, or an answer that says nothing
	// about the credentials (HTTP 5xx, a malformed document, an unknown
	// code). Filings wait and retry meanwhile.
	ConnectionUnreachable = "unreachable"
)

// CheckConnection calls /status and says whether the environment answers
// and accepts the credentials: one of the Connection* states, and what NCMEC
// answered in plain words (its request id included, to quote to NCMEC; never
// the credentials, which travel only in a header).
func (c *Client) CheckConnection(ctx context.Context) (state, detail string) {
	resp, err := c.Status(ctx)
	switch {
	case err == nil:
		return ConnectionOK, resp.Description
	case IsAuth(err):
		return ConnectionRefused, fmt.Sprintf("NCMEC refused the credentials: %v", err)
	default:
		return ConnectionUnreachable, fmt.Sprintf("NCMEC did not answer /status as expected: %v", err)
	}
}
