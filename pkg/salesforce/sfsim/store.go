package sfsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Record is a stored record: field API name → value (string, bool,
// json.Number or nil), including Id and the system dates.
type Record map[string]any

// apiError is one element of a Salesforce error array.
type apiError struct {
	ErrorCode string   `json:"errorCode"`
	Message   string   `json:"message"`
	Fields    []string `json:"fields,omitempty"`
}

// object is one sObject's schema and records. Stored records are never
// mutated, only replaced, so a snapshot for rollback copies the map alone.
type object struct {
	schema  ObjectSchema
	fields  []*Field          // system fields first, then declared ones
	byName  map[string]*Field // lower-case name → field
	records map[string]Record // 18-char id → record
	// index finds records by the value of an external-id or unique field:
	// every upsert looks one up, and a scan of every record made the
	// simulator the load test's hot spot.
	index map[indexKey]map[string]struct{} // → ids
}

// indexKey is a field's name and a valueKey of its value.
type indexKey struct{ field, value string }

func newObject(s ObjectSchema) *object {
	o := &object{schema: s, byName: map[string]*Field{}, records: map[string]Record{}, index: map[indexKey]map[string]struct{}{}}
	if o.schema.Label == "" {
		o.schema.Label = s.Name
	}
	for _, f := range append(systemFields(), s.Fields...) {
		f := f
		o.fields = append(o.fields, &f)
		o.byName[strings.ToLower(f.Name)] = &f
	}
	return o
}

func (o *object) field(name string) *Field { return o.byName[strings.ToLower(name)] }

func (f *Field) indexed() bool { return f.ExternalID || f.Unique }

// put stores a record under id, keeping the index.
func (o *object) put(id string, r Record) {
	o.remove(id)
	o.records[id] = r
	for _, f := range o.fields {
		if v, ok := valueKey(r[f.Name]); ok && f.indexed() {
			k := indexKey{f.Name, v}
			if o.index[k] == nil {
				o.index[k] = map[string]struct{}{}
			}
			o.index[k][id] = struct{}{}
		}
	}
}

// remove deletes the record id, keeping the index.
func (o *object) remove(id string) {
	old, ok := o.records[id]
	if !ok {
		return
	}
	for _, f := range o.fields {
		if v, ok := valueKey(old[f.Name]); ok && f.indexed() {
			delete(o.index[indexKey{f.Name, v}], id)
		}
	}
	delete(o.records, id)
}

// reindex rebuilds the index after the records were replaced.
func (o *object) reindex() {
	recs := o.records
	o.records, o.index = map[string]Record{}, map[indexKey]map[string]struct{}{}
	for id, r := range recs {
		o.put(id, r)
	}
}

// valueKey is the index key of a stored value: equal under equalValue
// means equal keys (strings compare without case, numbers as numbers).
func valueKey(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return "s:" + strings.ToLower(v), true
	case json.Number:
		f, err := v.Float64()
		return "n:" + strconv.FormatFloat(f, 'g', -1, 64), err == nil
	case bool:
		return "b:" + strconv.FormatBool(v), true
	}
	return "", false
}

// lookupKeys are the keys a value given in a URL or a write may match.
func lookupKeys(value string) []string {
	keys := []string{"s:" + strings.ToLower(value), "b:" + strings.ToLower(value)}
	if f, err := strconv.ParseFloat(value, 64); err == nil {
		keys = append(keys, "n:"+strconv.FormatFloat(f, 'g', -1, 64))
	}
	return keys
}

// store is every object. The Server's mutex guards it.
type store struct {
	objects map[string]*object // lower-case name → object
	order   []*object
	nextID  uint64
	autoNum map[string]int
	now     func() time.Time
	// writes counts each record's committed creates and updates (what its
	// field history would show): a test tells a repeated write from one.
	writes map[string]int // 18-char id → writes
}

func newStore(schema []ObjectSchema, now func() time.Time) *store {
	s := &store{objects: map[string]*object{}, autoNum: map[string]int{}, writes: map[string]int{}, now: now}
	for _, os := range schema {
		o := newObject(os)
		s.objects[strings.ToLower(os.Name)] = o
		s.order = append(s.order, o)
	}
	return s
}

func (s *store) object(name string) *object { return s.objects[strings.ToLower(name)] }

// snapshot and restore give composite allOrNone its rollback. Id and
// autonumber counters are not rolled back, as in Salesforce; write counts
// are, since the writes never happened.
type snapshot struct {
	records map[*object]map[string]Record
	writes  map[string]int
}

func (s *store) snapshot() snapshot {
	snap := snapshot{records: map[*object]map[string]Record{}, writes: maps.Clone(s.writes)}
	for _, o := range s.order {
		snap.records[o] = maps.Clone(o.records)
	}
	return snap
}

func (s *store) restore(snap snapshot) {
	for o, recs := range snap.records {
		o.records = recs
		o.reindex()
	}
	s.writes = snap.writes
}

// sorted returns the object's records oldest first (ids grow with time).
func (o *object) sorted() []Record {
	ids := slices.Sorted(maps.Keys(o.records))
	out := make([]Record, len(ids))
	for i, id := range ids {
		out[i] = o.records[id]
	}
	return out
}

// Ids: 15 case-sensitive characters (3-character key prefix + 12 base-62
// digits) plus the 3-character checksum that makes the 18-character form
// case-insensitive, as Salesforce does.

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func (s *store) newID(prefix string) string {
	s.nextID++
	n := s.nextID
	var digits [12]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = base62[n%62]
		n /= 62
	}
	return withChecksum(prefix + string(digits[:]))
}

func withChecksum(id15 string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	var suffix [3]byte
	for i := range 3 {
		flags := 0
		for j := range 5 {
			c := id15[i*5+j]
			if c >= 'A' && c <= 'Z' {
				flags |= 1 << j
			}
		}
		suffix[i] = alphabet[flags]
	}
	return id15 + string(suffix[:])
}

// canonicalID turns a 15- or 18-character id into the stored 18-character
// form, or returns "" when s is not shaped like an id.
func canonicalID(s string) string {
	if !isAlnum(s) {
		return ""
	}
	switch len(s) {
	case 15:
		return withChecksum(s)
	case 18:
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
		b := []byte(s[:15])
		for i := range 3 {
			flags := strings.IndexByte(alphabet, upper(s[15+i]))
			if flags < 0 {
				return ""
			}
			for j := range 5 {
				c := b[i*5+j]
				if flags&(1<<j) != 0 {
					b[i*5+j] = upper(c)
				} else if c >= 'A' && c <= 'Z' {
					b[i*5+j] = c + 'a' - 'A'
				}
			}
		}
		return withChecksum(string(b))
	}
	return ""
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// sfTime is Salesforce's datetime format in JSON.
const sfTime = "2006-01-02T15:04:05.000-0700"

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+0000") }

func parseDateTime(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, sfTime, "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05.000Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// write is the validated form of a create or update body.
type write struct {
	values map[string]any // canonical field name → value
}

// validate checks a request body against the object's schema the way
// Salesforce does: unknown or read-only fields, value types, lengths,
// restricted picklists, references; and on create, required fields.
// extField is the external id field of an upsert, whose value comes from
// the URL and must not be in the body.
func (s *store) validate(o *object, body map[string]any, create bool, extField string) (write, []apiError) {
	w := write{values: map[string]any{}}
	var readOnly []string
	var errs []apiError
	for _, key := range slices.Sorted(maps.Keys(body)) {
		v := body[key]
		if key == "attributes" {
			continue
		}
		if strings.EqualFold(key, "Id") {
			return w, []apiError{{ErrorCode: "INVALID_FIELD", Message: "The Id field should not be specified in the sobject data."}}
		}
		f := o.field(key)
		if f == nil {
			return w, []apiError{{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on sobject of type %s", key, o.schema.Name)}}
		}
		if extField != "" && strings.EqualFold(f.Name, extField) {
			return w, []apiError{{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("The external ID field %s should not be specified in the sobject data; it is part of the URL", f.Name), Fields: []string{f.Name}}}
		}
		if !f.writable() {
			readOnly = append(readOnly, f.Name)
			continue
		}
		val, e := s.convert(o, f, v)
		if e != nil {
			errs = append(errs, *e)
			continue
		}
		w.values[f.Name] = val
	}
	if len(readOnly) > 0 {
		return w, []apiError{{ErrorCode: "INVALID_FIELD_FOR_INSERT_UPDATE",
			Message: fmt.Sprintf("Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", strings.Join(readOnly, ", ")),
			Fields:  readOnly}}
	}
	var missing []string
	for _, f := range o.fields {
		if !f.Required {
			continue
		}
		v, given := w.values[f.Name]
		if (create && !given && !strings.EqualFold(f.Name, extField)) || (given && v == nil) {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, apiError{ErrorCode: "REQUIRED_FIELD_MISSING", Message: fmt.Sprintf("Required fields are missing: [%s]", strings.Join(missing, ", ")), Fields: missing})
	}
	return w, errs
}

// convert checks one value against its field and returns what is stored.
func (s *store) convert(o *object, f *Field, v any) (any, *apiError) {
	if v == nil {
		if f.Type == "boolean" {
			return false, nil
		}
		return nil, nil
	}
	parseErr := func() *apiError {
		return &apiError{ErrorCode: "JSON_PARSER_ERROR", Message: fmt.Sprintf("Cannot deserialize instance of %s from %s value for field %s", f.Type, jsonKind(v), f.Name)}
	}
	switch f.Type {
	case "boolean":
		b, ok := v.(bool)
		if !ok {
			return nil, parseErr()
		}
		return b, nil
	case "double", "int":
		n, ok := v.(json.Number)
		if !ok {
			return nil, parseErr()
		}
		if _, err := n.Float64(); err != nil {
			return nil, parseErr()
		}
		return n, nil
	}
	str, ok := v.(string)
	if n, isNum := v.(json.Number); isNum && textTypes[f.Type] {
		str, ok = n.String(), true
	}
	if !ok {
		return nil, parseErr()
	}
	switch f.Type {
	case "date":
		if _, err := time.Parse(time.DateOnly, str); err != nil {
			return nil, parseErr()
		}
		return str, nil
	case "datetime":
		t, ok := parseDateTime(str)
		if !ok {
			return nil, parseErr()
		}
		return formatTime(t), nil
	case "reference":
		id := canonicalID(str)
		target := s.object(f.ReferenceTo)
		if id == "" || !strings.HasPrefix(id, target.schema.KeyPrefix) {
			return nil, &apiError{ErrorCode: "MALFORMED_ID", Message: fmt.Sprintf("%s: id value of incorrect type: %s", f.label(), str), Fields: []string{f.Name}}
		}
		if _, ok := target.records[id]; !ok {
			return nil, &apiError{ErrorCode: "INVALID_CROSS_REFERENCE_KEY", Message: fmt.Sprintf("invalid cross reference id: %s", str), Fields: []string{f.Name}}
		}
		return id, nil
	case "picklist", "multipicklist":
		if f.Restricted {
			for _, one := range strings.Split(str, ";") {
				if !slices.Contains(f.Picklist, one) {
					return nil, &apiError{ErrorCode: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", Message: fmt.Sprintf("%s: bad value for restricted picklist field: %s", f.label(), one), Fields: []string{f.Name}}
				}
			}
		}
	case "email":
		if !strings.Contains(str, "@") {
			return nil, &apiError{ErrorCode: "INVALID_EMAIL_ADDRESS", Message: fmt.Sprintf("%s: invalid email address: %s", f.label(), shorten(str)), Fields: []string{f.Name}}
		}
	}
	if f.Length > 0 && utf8.RuneCountInString(str) > f.Length {
		return nil, &apiError{ErrorCode: "STRING_TOO_LONG", Message: fmt.Sprintf("%s: data value too large: %s (max length=%d)", f.label(), shorten(str), f.Length), Fields: []string{f.Name}}
	}
	return str, nil
}

// shorten keeps error messages (which end up in logs) from carrying long
// free-text values; Salesforce echoes the whole value.
func shorten(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	r := []rune(s)
	return string(r[:40]) + "..."
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "VALUE_STRING"
	case bool:
		return "VALUE_TRUE_OR_FALSE"
	case json.Number:
		return "VALUE_NUMBER"
	case []any:
		return "START_ARRAY"
	case map[string]any:
		return "START_OBJECT"
	}
	return "VALUE"
}

// findBy returns the ids of records whose field equals value; text compares
// case-insensitively, as Salesforce does for external ids and SOQL.
func (o *object) findBy(f *Field, value string) []string {
	var ids []string
	if f.indexed() {
		for _, v := range lookupKeys(value) {
			for id := range o.index[indexKey{f.Name, v}] {
				if equalValue(o.records[id][f.Name], value) {
					ids = append(ids, id)
				}
			}
		}
	} else {
		for id, r := range o.records {
			if equalValue(r[f.Name], value) {
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

func equalValue(stored any, value string) bool {
	switch v := stored.(type) {
	case string:
		return strings.EqualFold(v, value)
	case json.Number:
		a, err1 := v.Float64()
		var b json.Number = json.Number(value)
		bf, err2 := b.Float64()
		return err1 == nil && err2 == nil && a == bf
	case bool:
		return fmt.Sprint(v) == strings.ToLower(value)
	}
	return false
}

// checkUnique refuses a write that would give a unique field a value
// another record already has.
func (o *object) checkUnique(w write, selfID string) []apiError {
	var errs []apiError
	for name, v := range w.values {
		f := o.field(name)
		s, ok := v.(string)
		if !f.Unique || !ok {
			continue
		}
		for _, id := range o.findBy(f, s) {
			if id != selfID {
				errs = append(errs, apiError{ErrorCode: "DUPLICATE_VALUE",
					Message: fmt.Sprintf("duplicate value found: %s duplicates value on record with id: %s", f.Name, id), Fields: []string{f.Name}})
				break
			}
		}
	}
	return errs
}

// create stores a new record from a validated write.
func (s *store) create(o *object, w write) (string, []apiError) {
	if errs := o.checkUnique(w, ""); len(errs) > 0 {
		return "", errs
	}
	id := s.newID(o.schema.KeyPrefix)
	now := formatTime(s.now())
	r := Record{"Id": id, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now}
	for _, f := range o.fields[len(systemFields()):] {
		switch {
		case f.Type == "autonumber":
			key := o.schema.Name + "." + f.Name
			s.autoNum[key]++
			r[f.Name] = fmt.Sprintf("%08d", s.autoNum[key])
		case f.Default != "":
			r[f.Name] = f.Default
		case f.Type == "boolean":
			r[f.Name] = false
		default:
			r[f.Name] = nil
		}
	}
	maps.Copy(r, w.values)
	o.put(id, r)
	s.writes[id]++
	return id, nil
}

// update replaces a stored record with its fields changed by w.
func (s *store) update(o *object, id string, w write) []apiError {
	if errs := o.checkUnique(w, id); len(errs) > 0 {
		return errs
	}
	r := maps.Clone(o.records[id])
	maps.Copy(r, w.values)
	now := formatTime(s.now())
	r["LastModifiedDate"], r["SystemModstamp"] = now, now
	o.put(id, r)
	s.writes[id]++
	return nil
}
