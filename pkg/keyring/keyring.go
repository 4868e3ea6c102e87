// Package keyring protects the per-report data keys that encrypt evidence.
//
// Every report gets a fresh random data key. The data key is never stored in
// the clear: it is wrapped (AES-256-GCM) under a master key from
// configuration, and the wrapped form records which master key was used so
// that master keys can rotate: add a new key, make it current, Rewrap every
// stored data key, then drop the old key from configuration. A data key
// wrapped under a key the keyring no longer holds is refused with a
// *RetiredKeyError. Destroying every copy of a report's wrapped key makes its
// evidence unreadable.
//
// The report id is bound into each wrapped key as additional authenticated
// data, so a wrapped key copied onto another report does not unwrap.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// KeySize is the size in bytes of master keys and data keys (AES-256).
const KeySize = 32

// aadPrefix separates this use of the master keys from any other and names
// the format version, should it ever change.
const aadPrefix = "takedown/keyring/v1\x00"

// WrappedKey is a data key encrypted under a master key. It is safe to store
// and to put in events; it is useless without the master key.
type WrappedKey struct {
	// MasterKeyID names the master key that wrapped the data key.
	MasterKeyID string
	// Ciphertext is the GCM nonce followed by the sealed data key and tag.
	Ciphertext []byte
}

// ErrUnwrap means a wrapped key failed authentication: it was altered, it
// belongs to another report, or the master key under its id has changed.
var ErrUnwrap = errors.New("keyring: wrapped key does not authenticate")

// RetiredKeyError is returned for a wrapped key whose master key is not in
// the keyring: retired after rotation, or never configured here.
type RetiredKeyError struct {
	MasterKeyID string
}

func (e *RetiredKeyError) Error() string {
	return fmt.Sprintf("keyring: master key %q is retired or unknown", e.MasterKeyID)
}

// Keyring holds the master keys. It is safe for concurrent use. It keeps only
// the AES ciphers, not the key bytes, and never prints them.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// New builds a keyring from master keys by id; current names the key that
// wraps new data keys. The key slices are zeroed once the ciphers are built,
// whether or not New succeeds.
func New(keys map[string][]byte, current string) (*Keyring, error) {
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	if len(keys) == 0 {
		return nil, errors.New("keyring: no master keys")
	}
	kr := &Keyring{current: current, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if err := validID(id); err != nil {
			return nil, err
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("keyring: master key %q is %d bytes, want %d", id, len(key), KeySize)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("keyring: master key %q: %w", id, err)
		}
		kr.aeads[id] = aead
	}
	if current == "" {
		return nil, errors.New("keyring: no current master key named")
	}
	if _, ok := kr.aeads[current]; !ok {
		return nil, fmt.Errorf("keyring: current master key %q is not among the keys (%s)", current, strings.Join(kr.IDs(), ", "))
	}
	return kr, nil
}

// Parse builds a keyring from configuration text: comma-separated entries
// "id:base64key" (standard base64, padding optional; each key 32 bytes), for
// example "k1:AAAA...,k2:BBBB...". current names the key that wraps new data
// keys. Errors name the entry by position and id but never echo key text.
func Parse(text, current string) (*Keyring, error) {
	keys := make(map[string][]byte)
	zero := func() {
		for _, k := range keys {
			clear(k)
		}
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, errors.New("keyring: no master keys configured")
	}
	for i, entry := range strings.Split(text, ",") {
		n := i + 1
		entry = strings.TrimSpace(entry)
		if entry == "" {
			zero()
			return nil, fmt.Errorf("keyring: entry %d is empty (stray comma?)", n)
		}
		id, b64, ok := strings.Cut(entry, ":")
		id = strings.TrimSpace(id)
		if !ok {
			zero()
			return nil, fmt.Errorf("keyring: entry %d: want id:base64key, found no ':'", n)
		}
		if err := validID(id); err != nil {
			zero()
			return nil, fmt.Errorf("keyring: entry %d: %w", n, err)
		}
		if _, dup := keys[id]; dup {
			zero()
			return nil, fmt.Errorf("keyring: entry %d: master key id %q appears twice", n, id)
		}
		key, err := decodeKey(strings.TrimSpace(b64))
		if err != nil {
			zero()
			return nil, fmt.Errorf("keyring: entry %d (id %q): %w", n, id, err)
		}
		keys[id] = key
	}
	return New(keys, strings.TrimSpace(current))
}

// decodeKey decodes standard base64 with or without padding. The error does
// not include the input: it may be most of a real key.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("key is empty")
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	key, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("key is not valid standard base64")
	}
	if len(key) != KeySize {
		clear(key)
		return nil, fmt.Errorf("key decodes to %d bytes, want %d", len(key), KeySize)
	}
	return key, nil
}

// validID keeps ids printable and free of the separators of the
// configuration syntax.
func validID(id string) error {
	if id == "" {
		return errors.New("keyring: master key id is empty")
	}
	if len(id) > 64 {
		return fmt.Errorf("keyring: master key id %.16q... is longer than 64 characters", id)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("keyring: master key id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// CurrentID is the id of the master key that wraps new data keys.
func (kr *Keyring) CurrentID() string { return kr.current }

// IDs lists the ids of all master keys held, sorted.
func (kr *Keyring) IDs() []string {
	ids := make([]string, 0, len(kr.aeads))
	for id := range kr.aeads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// String shows ids only, so a keyring that ends up in a log line or a %v
// leaks no key material.
func (kr *Keyring) String() string {
	return fmt.Sprintf("keyring(current=%s, keys=%s)", kr.current, strings.Join(kr.IDs(), ","))
}

// GoString keeps %#v from printing the ciphers' key schedules.
func (kr *Keyring) GoString() string { return kr.String() }

// LogValue keeps slog from printing more than ids.
func (kr *Keyring) LogValue() slog.Value { return slog.StringValue(kr.String()) }

// NewDataKey returns a fresh random data key for reportID and its wrapped
// form under the current master key. The caller should clear(plain) once it
// has encrypted the report's files.
func (kr *Keyring) NewDataKey(reportID string) (plain []byte, wrapped WrappedKey, err error) {
	if reportID == "" {
		return nil, WrappedKey{}, errors.New("keyring: new data key: empty report id")
	}
	plain = make([]byte, KeySize)
	if _, err := rand.Read(plain); err != nil {
		return nil, WrappedKey{}, fmt.Errorf("keyring: new data key: %w", err)
	}
	wrapped, err = kr.wrap(reportID, plain)
	if err != nil {
		clear(plain)
		return nil, WrappedKey{}, fmt.Errorf("keyring: new data key: %w", err)
	}
	return plain, wrapped, nil
}

func (kr *Keyring) wrap(reportID string, plain []byte) (WrappedKey, error) {
	aead := kr.aeads[kr.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return WrappedKey{}, err
	}
	ct := aead.Seal(nonce, nonce, plain, aad(kr.current, reportID))
	return WrappedKey{MasterKeyID: kr.current, Ciphertext: ct}, nil
}

// Unwrap returns the data key of reportID. It fails with *RetiredKeyError
// when the master key is not held and with ErrUnwrap when the wrapped key
// does not authenticate (altered, or another report's).
func (kr *Keyring) Unwrap(reportID string, w WrappedKey) ([]byte, error) {
	aead, ok := kr.aeads[w.MasterKeyID]
	if !ok {
		return nil, fmt.Errorf("keyring: unwrap data key of report %s: %w", reportID, &RetiredKeyError{MasterKeyID: w.MasterKeyID})
	}
	ns := aead.NonceSize()
	if len(w.Ciphertext) != ns+KeySize+aead.Overhead() {
		return nil, fmt.Errorf("keyring: unwrap data key of report %s: wrapped key is %d bytes, want %d: %w",
			reportID, len(w.Ciphertext), ns+KeySize+aead.Overhead(), ErrUnwrap)
	}
	plain, err := aead.Open(nil, w.Ciphertext[:ns], w.Ciphertext[ns:], aad(w.MasterKeyID, reportID))
	if err != nil {
		return nil, fmt.Errorf("keyring: unwrap data key of report %s with master key %q: %w", reportID, w.MasterKeyID, ErrUnwrap)
	}
	return plain, nil
}

// Rewrap wraps reportID's data key under the current master key, for
// rotation. A key already under the current master key is rewrapped too
// (with a fresh nonce), which keeps the caller's loop simple.
func (kr *Keyring) Rewrap(reportID string, w WrappedKey) (WrappedKey, error) {
	plain, err := kr.Unwrap(reportID, w)
	if err != nil {
		return WrappedKey{}, err
	}
	defer clear(plain)
	nw, err := kr.wrap(reportID, plain)
	if err != nil {
		return WrappedKey{}, fmt.Errorf("keyring: rewrap data key of report %s: %w", reportID, err)
	}
	return nw, nil
}

// aad binds a wrapped key to its master key id and its report.
func aad(masterKeyID, reportID string) []byte {
	return []byte(aadPrefix + masterKeyID + "\x00" + reportID)
}

// sealPrefix keeps the data keys of sealed values apart from reports' (whose
// ids are UUIDs): a key wrapped for one never unwraps for the other.
const sealPrefix = "seal:"

// Seal encrypts a small value kept at rest (a browser session's data) under
// a fresh data key wrapped by the current master key. purpose is bound in:
// a value sealed for one purpose does not open for another. The sealed form
// names its master key, so rotation works as for reports: a value sealed
// under a retired key no longer opens.
func (kr *Keyring) Seal(purpose string, plain []byte) ([]byte, error) {
	key, wrapped, err := kr.NewDataKey(sealPrefix + purpose)
	if err != nil {
		return nil, fmt.Errorf("keyring: seal %s: %w", purpose, err)
	}
	defer clear(key)
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: seal %s: %w", purpose, err)
	}
	out := make([]byte, 0, 1+len(wrapped.MasterKeyID)+len(wrapped.Ciphertext)+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, byte(len(wrapped.MasterKeyID)))
	out = append(out, wrapped.MasterKeyID...)
	out = append(out, wrapped.Ciphertext...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyring: seal %s: %w", purpose, err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, []byte(purpose)), nil
}

// Open returns the value Seal sealed for purpose. It fails with
// *RetiredKeyError when its master key is not held and with ErrUnwrap when
// it does not authenticate.
func (kr *Keyring) Open(purpose string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1 || len(sealed) < 1+int(sealed[0]) {
		return nil, fmt.Errorf("keyring: open %s: too short: %w", purpose, ErrUnwrap)
	}
	id := string(sealed[1 : 1+sealed[0]])
	rest := sealed[1+len(id):]
	aead, ok := kr.aeads[id]
	if !ok {
		return nil, fmt.Errorf("keyring: open %s: %w", purpose, &RetiredKeyError{MasterKeyID: id})
	}
	wrappedLen := aead.NonceSize() + KeySize + aead.Overhead()
	if len(rest) < wrappedLen+aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("keyring: open %s: too short: %w", purpose, ErrUnwrap)
	}
	key, err := kr.Unwrap(sealPrefix+purpose, WrappedKey{MasterKeyID: id, Ciphertext: rest[:wrappedLen]})
	if err != nil {
		return nil, fmt.Errorf("keyring: open %s: %w", purpose, err)
	}
	defer clear(key)
	data, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: open %s: %w", purpose, err)
	}
	rest = rest[wrappedLen:]
	plain, err := data.Open(nil, rest[:data.NonceSize()], rest[data.NonceSize():], []byte(purpose))
	if err != nil {
		return nil, fmt.Errorf("keyring: open %s: %w", purpose, ErrUnwrap)
	}
	return plain, nil
}
