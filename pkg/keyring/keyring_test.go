package keyring_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"takedown/pkg/keyring"
)

func randKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, keyring.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func mustParse(t *testing.T, text, current string) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Parse(text, current)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return kr
}

func TestRoundTrip(t *testing.T) {
	kr := mustParse(t, "k1:"+b64(randKey(t)), "k1")
	plain, w, err := kr.NewDataKey("r-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != keyring.KeySize {
		t.Fatalf("data key is %d bytes", len(plain))
	}
	if w.MasterKeyID != "k1" {
		t.Errorf("MasterKeyID = %q, want k1", w.MasterKeyID)
	}
	if bytes.Contains(w.Ciphertext, plain) {
		t.Error("wrapped key contains the plain data key")
	}
	got, err := kr.Unwrap("r-1", w)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Error("unwrapped key differs from the data key")
	}

	plain2, _, err := kr.NewDataKey("r-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(plain, plain2) {
		t.Error("two data keys are equal")
	}
}

func TestUnwrapRefusesOtherReport(t *testing.T) {
	kr := mustParse(t, "k1:"+b64(randKey(t)), "k1")
	_, w, err := kr.NewDataKey("r-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Unwrap("r-2", w); !errors.Is(err, keyring.ErrUnwrap) {
		t.Fatalf("Unwrap onto another report: err = %v, want ErrUnwrap", err)
	}
}

func TestUnwrapRefusesTampering(t *testing.T) {
	kr := mustParse(t, "k1:"+b64(randKey(t))+",k2:"+b64(randKey(t)), "k1")
	_, w, err := kr.NewDataKey("r-1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Ciphertext {
		bad := keyring.WrappedKey{MasterKeyID: w.MasterKeyID, Ciphertext: bytes.Clone(w.Ciphertext)}
		bad.Ciphertext[i] ^= 0x01
		if _, err := kr.Unwrap("r-1", bad); !errors.Is(err, keyring.ErrUnwrap) {
			t.Fatalf("flipped byte %d: err = %v, want ErrUnwrap", i, err)
		}
	}
	for _, n := range []int{0, 12, len(w.Ciphertext) - 1, len(w.Ciphertext) + 1} {
		bad := keyring.WrappedKey{MasterKeyID: "k1", Ciphertext: make([]byte, n)}
		if _, err := kr.Unwrap("r-1", bad); !errors.Is(err, keyring.ErrUnwrap) {
			t.Fatalf("%d-byte ciphertext: err = %v, want ErrUnwrap", n, err)
		}
	}
	// Relabelled onto the other master key.
	relabelled := keyring.WrappedKey{MasterKeyID: "k2", Ciphertext: w.Ciphertext}
	if _, err := kr.Unwrap("r-1", relabelled); !errors.Is(err, keyring.ErrUnwrap) {
		t.Fatalf("relabelled: err = %v, want ErrUnwrap", err)
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := b64(randKey(t)), b64(randKey(t))
	old := mustParse(t, "k1:"+k1, "k1")
	plain, w1, err := old.NewDataKey("r-1")
	if err != nil {
		t.Fatal(err)
	}

	// Step 1: k2 added and made current; k1 still held for unwrapping.
	both := mustParse(t, "k1:"+k1+",k2:"+k2, "k2")
	if got, err := both.Unwrap("r-1", w1); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("old key under new keyring: %v", err)
	}
	w2, err := both.Rewrap("r-1", w1)
	if err != nil {
		t.Fatal(err)
	}
	if w2.MasterKeyID != "k2" {
		t.Errorf("rewrapped MasterKeyID = %q, want k2", w2.MasterKeyID)
	}

	// Step 2: k1 retired.
	only2 := mustParse(t, "k2:"+k2, "k2")
	if got, err := only2.Unwrap("r-1", w2); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("rewrapped key after retirement: %v", err)
	}
	_, err = only2.Unwrap("r-1", w1)
	var retired *keyring.RetiredKeyError
	if !errors.As(err, &retired) || retired.MasterKeyID != "k1" {
		t.Fatalf("Unwrap under retired key: err = %v, want *RetiredKeyError{k1}", err)
	}
	if _, err := only2.Rewrap("r-1", w1); !errors.As(err, &retired) {
		t.Fatalf("Rewrap under retired key: err = %v, want *RetiredKeyError", err)
	}
}

func TestEmptyReportID(t *testing.T) {
	kr := mustParse(t, "k1:"+b64(randKey(t)), "k1")
	if _, _, err := kr.NewDataKey(""); err == nil {
		t.Fatal("NewDataKey(\"\") succeeded")
	}
}

func TestParseForms(t *testing.T) {
	k := randKey(t)
	raw := base64.RawStdEncoding.EncodeToString(k)
	for _, text := range []string{
		"k1:" + b64(k),
		" k1 : " + b64(k) + " , k-2.x_y:" + raw + " ",
		"k1:" + raw,
	} {
		kr, err := keyring.Parse(text, "k1")
		if err != nil {
			t.Errorf("Parse(%q): %v", text, err)
			continue
		}
		if kr.CurrentID() != "k1" {
			t.Errorf("CurrentID = %q", kr.CurrentID())
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := b64(randKey(t))
	short := b64(make([]byte, 16))
	for _, tc := range []struct {
		name, text, current, want string
	}{
		{"empty", "", "k1", "no master keys"},
		{"no colon", "k1" + good, "k1", "entry 1: want id:base64key"},
		{"stray comma", "k1:" + good + ",", "k1", "entry 2 is empty"},
		{"empty id", ":" + good, "k1", "entry 1: keyring: master key id is empty"},
		{"bad id", "k 1:" + good, "k 1", "only letters"},
		{"bad id comma-free", "k/1:" + good, "k/1", "only letters"},
		{"duplicate", "k1:" + good + ",k1:" + good, "k1", `entry 2: master key id "k1" appears twice`},
		{"not base64", "k1:" + good[:20] + "!!" + good[22:], "k1", `entry 1 (id "k1"): key is not valid standard base64`},
		{"short key", "k1:" + short, "k1", `entry 1 (id "k1"): key decodes to 16 bytes, want 32`},
		{"empty key", "k1:", "k1", "key is empty"},
		{"no current", "k1:" + good, "", "no current master key"},
		{"unknown current", "k1:" + good, "k9", `current master key "k9" is not among the keys (k1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keyring.Parse(tc.text, tc.current)
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), good[:12]) {
				t.Errorf("error %q echoes key material", err)
			}
		})
	}
}

func TestNewZeroesInput(t *testing.T) {
	k := randKey(t)
	if _, err := keyring.New(map[string][]byte{"k1": k}, "k1"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k, make([]byte, keyring.KeySize)) {
		t.Error("New left the master key bytes in place")
	}
}

func TestPrintingShowsNoKeys(t *testing.T) {
	k := randKey(t)
	kr := mustParse(t, "k1:"+b64(k), "k1")
	for _, s := range []string{fmt.Sprint(kr), fmt.Sprintf("%+v", kr), fmt.Sprintf("%#v", kr)} {
		if s != "keyring(current=k1, keys=k1)" {
			t.Errorf("printed as %q", s)
		}
	}
}

func TestSealOpen(t *testing.T) {
	k1, k2 := b64(randKey(t)), b64(randKey(t))
	kr := mustParse(t, "k1:"+k1, "k1")
	secret := []byte("eyJhbGciOi.the-bearer-token.sig")
	sealed, err := kr.Seal("session", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) || bytes.Contains(sealed, []byte("bearer")) {
		t.Error("sealed value shows the secret")
	}
	if got, err := kr.Open("session", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := kr.Open("signin", sealed); !errors.Is(err, keyring.ErrUnwrap) {
		t.Errorf("opened for another purpose: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := kr.Open("session", bad); err == nil {
			t.Fatalf("byte %d flipped still opens", i)
		}
	}
	if _, err := kr.Open("session", sealed[:20]); !errors.Is(err, keyring.ErrUnwrap) {
		t.Errorf("truncated: %v", err)
	}
	// Rotation: opens while the old key is held, not after it is retired.
	both := mustParse(t, "k1:"+k1+",k2:"+k2, "k2")
	if _, err := both.Open("session", sealed); err != nil {
		t.Errorf("open under the rotated keyring: %v", err)
	}
	var retired *keyring.RetiredKeyError
	if _, err := mustParse(t, "k2:"+k2, "k2").Open("session", sealed); !errors.As(err, &retired) {
		t.Errorf("open after retirement: %v, want *RetiredKeyError", err)
	}
}
