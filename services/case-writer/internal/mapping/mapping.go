// Package mapping reads the configuration that maps our report, file and
// NCMEC fields to an org's Salesforce fields (every org names its custom
// fields differently), checks it, and renders the records case-writer
// writes: one Case per report and one child record per file.
//
// The file is YAML (JSON works too, being YAML); default.yaml, embedded in
// the binary, is used when none is configured and carries what the old
// tool kept in its CRM (API.md §6).
package mapping

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/salesforce"
	"takedown/services/case-writer/internal/cases"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default mapping, for documentation.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Mapping is a checked mapping.
type Mapping struct {
	Case  Object `yaml:"case"`
	Files Object `yaml:"files"`
}

// Object maps one Salesforce object. The external id field always holds our
// id (report.id for the case, file.id for a file), which is what makes every
// write an idempotent upsert.
type Object struct {
	Object     string `yaml:"object"`
	ExternalID string `yaml:"external_id"`
	// Parent is the child's reference field to the case (files only).
	Parent string           `yaml:"parent"`
	Fields map[string]Field `yaml:"fields"`
}

// Field fills one Salesforce field from one of our fields (Source) or with a
// constant (Value). Values translates the source's values, e.g. our NCMEC
// state "finished" to the org's picklist value "Finished".
type Field struct {
	Source string
	Value  any
	Values map[string]string
}

// UnmarshalYAML accepts `Field__c: report.id` as short for
// `Field__c: {source: report.id}`.
func (f *Field) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&f.Source)
	}
	var raw struct {
		Source string            `yaml:"source"`
		Value  any               `yaml:"value"`
		Values map[string]string `yaml:"values"`
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a source name or {source, values} or {value}", n.Line)
	}
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "source" && k != "value" && k != "values" {
			return fmt.Errorf("line %d: unknown key %q (want source, values or value)", n.Content[i].Line, k)
		}
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	f.Source, f.Value, f.Values = raw.Source, raw.Value, raw.Values
	return nil
}

// Default returns the embedded default mapping.
func Default() *Mapping {
	m, err := Parse(defaultYAML)
	if err != nil {
		panic("mapping: the embedded default is invalid: " + err.Error()) // a build-time fact, covered by a test
	}
	return m
}

// Load reads and checks the mapping file at path, or returns the default
// when path is empty.
func Load(path string) (*Mapping, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("case mapping: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("case mapping %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes and checks a mapping. The error names every field that is
// wrong, one per line.
func Parse(b []byte) (*Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Mapping) check() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, o := range []struct {
		name  string
		obj   *Object
		scope scope
	}{{"case", &m.Case, caseScope}, {"files", &m.Files, fileScope}} {
		if o.obj.Object == "" {
			fail("%s.object: required (the Salesforce object's API name)", o.name)
		}
		if o.obj.ExternalID == "" {
			fail("%s.external_id: required (the External ID field that holds our id)", o.name)
		}
		switch {
		case o.scope == fileScope && o.obj.Parent == "":
			fail("files.parent: required (the reference field to the case)")
		case o.scope == caseScope && o.obj.Parent != "":
			fail("case.parent: only files have a parent")
		}
		if len(o.obj.Fields) == 0 {
			fail("%s.fields: none mapped", o.name)
		}
		for _, name := range sortedKeys(o.obj.Fields) {
			f := o.obj.Fields[name]
			where := fmt.Sprintf("%s.fields.%s", o.name, name)
			if strings.EqualFold(name, o.obj.ExternalID) || strings.EqualFold(name, o.obj.Parent) {
				fail("%s: the external id and parent fields are filled by case-writer itself", where)
				continue
			}
			if (f.Source == "") == (f.Value == nil) {
				fail("%s: give either a source or a value", where)
				continue
			}
			if f.Value != nil {
				if f.Values != nil {
					fail("%s: values applies to a source, not to a constant value", where)
				}
				continue
			}
			s, ok := sources[f.Source]
			switch {
			case !ok:
				fail("%s: unknown source %q (known: %s)", where, f.Source, strings.Join(Sources(o.scope == fileScope), ", "))
				continue
			case s.scope == fileScope && o.scope == caseScope:
				fail("%s: source %q is per file; the case can use report.* and ncmec.* only", where, f.Source)
				continue
			}
			if f.Values != nil && s.enum != nil {
				for _, v := range s.enum {
					if _, ok := f.Values[v]; !ok {
						fail("%s: values has no entry for %q, a value of %s", where, v, f.Source)
					}
				}
				for k := range f.Values {
					if !slices.Contains(s.enum, k) {
						fail("%s: values maps %q, which %s never takes (it takes %s)", where, k, f.Source, strings.Join(s.enum, ", "))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Sources lists the source names a case (or, with files, a file record)
// may use.
func Sources(files bool) []string {
	var out []string
	for name, s := range sources {
		if s.scope == caseScope || files {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Schemas is what the org must have for this mapping, for CheckSchema.
func (m *Mapping) Schemas() []salesforce.ObjectSchema {
	return []salesforce.ObjectSchema{
		{Object: m.Case.Object, ExternalIDField: m.Case.ExternalID, Fields: sortedKeys(m.Case.Fields)},
		{Object: m.Files.Object, ExternalIDField: m.Files.ExternalID, Fields: append([]string{m.Files.Parent}, sortedKeys(m.Files.Fields)...)},
	}
}

// Record is one record to upsert: the value of its external id field and
// the other fields.
type Record struct {
	ExternalID string
	Fields     map[string]any
}

// CaseRecord renders the case. c.Submitted must be set.
func (m *Mapping) CaseRecord(c *cases.Case) Record {
	return Record{ExternalID: c.ReportID, Fields: m.Case.render(c, nil)}
}

// FileRecords renders one record per file, in submission order; the parent
// reference is left to the caller (a composite reference to the case).
func (m *Mapping) FileRecords(c *cases.Case) []Record {
	files := c.Submitted.GetFiles()
	out := make([]Record, len(files))
	for i, f := range files {
		out[i] = Record{ExternalID: f.GetId(), Fields: m.Files.render(c, f)}
	}
	return out
}

func (o *Object) render(c *cases.Case, f *pb.File) map[string]any {
	r := c.Submitted.GetReport()
	out := make(map[string]any, len(o.Fields))
	for name, fld := range o.Fields {
		if fld.Value != nil {
			out[name] = fld.Value
			continue
		}
		v := sources[fld.Source].get(c, r, f)
		if v = jsonValue(v); v == nil {
			continue
		}
		if fld.Values != nil {
			if mapped, ok := fld.Values[fmt.Sprint(v)]; ok {
				v = mapped
			}
		}
		out[name] = v
	}
	return out
}

// jsonValue turns a source's value into what the Salesforce JSON carries,
// or nil for "unknown": left out, never sent as null.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if x == "" {
			return nil
		}
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
