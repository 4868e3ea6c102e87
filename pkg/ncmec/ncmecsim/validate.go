package ncmecsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// validator checks documents against the XSD with xmllint, the validator
// the project's CI has; NCMEC's own is a Java one, so messages differ in
// wording but not in what they accept.
type validator struct {
	xmllint string
	xsd     string
}

// xmllint's exit status for "the schema itself does not compile".
const xmllintSchemaError = 5

// validate returns the validator's complaint, "" when doc is valid, or an
// error when validation itself could not run.
func (v *validator) validate(ctx context.Context, doc []byte) (string, error) {
	cmd := exec.CommandContext(ctx, v.xmllint, "--noout", "--nonet", "--schema", v.xsd, "-")
	cmd.Stdin = bytes.NewReader(doc)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return "", nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == xmllintSchemaError || ctx.Err() != nil {
		return "", fmt.Errorf("xmllint: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return lintMessage(stderr.String()), nil
}

// lintMessage turns xmllint's report into one line: its error lines without
// the "-:LINE: " prefix and the final "- fails to validate".
func lintMessage(out string) string {
	var msgs []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "- fails to validate" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "-:"); ok {
			if i := strings.Index(rest, ": "); i >= 0 {
				line = rest[i+2:]
			}
		}
		msgs = append(msgs, line)
	}
	msg := strings.Join(msgs, "; ")
	if msg == "" {
		msg = "document does not validate"
	}
	const max = 2000
	if len(msg) > max {
		msg = msg[:max] + "…"
	}
	return msg
}
