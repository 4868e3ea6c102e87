package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindsMatchThroughWrapping(t *testing.T) {
	err := fmt.Errorf("placing the hold: %w", Errorf(NotFound, "", "", "no such report"))
	if !errors.Is(err, NotFound) {
		t.Errorf("errors.Is(%v, NotFound) = false", err)
	}
	if errors.Is(err, Conflict) {
		t.Errorf("errors.Is(%v, Conflict) = true", err)
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.CodeName() != "not_found" {
		t.Errorf("errors.As: %v, code %q", fe, fe.CodeName())
	}
	if got := Errorf(Conflict, "held", "", "under hold").CodeName(); got != "held" {
		t.Errorf("CodeName with a code = %q, want held", got)
	}
	if got, want := Errorf(Invalid, "", "reason", "give a reason").Error(), "invalid: give a reason (reason)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
