package sfsim

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// The simulator understands the SOQL a test needs to read records back:
//
//	SELECT f1, f2 FROM Object [WHERE f = 'v' [AND g = 'w' ...]] [LIMIT n]
//
// with string, number, true/false and null literals. String comparison is
// case-insensitive, as in SOQL. Anything else is MALFORMED_QUERY.
var (
	queryRE = regexp.MustCompile(`(?is)^\s*SELECT\s+(.+?)\s+FROM\s+([A-Za-z0-9_]+)(?:\s+WHERE\s+(.+?))?(?:\s+LIMIT\s+([0-9]+))?\s*$`)
	condRE  = regexp.MustCompile(`(?is)^\s*([A-Za-z0-9_]+)\s*=\s*('(?:[^'\\]|\\.)*'|true|false|null|-?[0-9]+(?:\.[0-9]+)?)\s*$`)
	andRE   = regexp.MustCompile(`(?i)\s+AND\s+`)
)

type condition struct {
	field *Field
	value string
	null  bool
}

func malformed(msg string) result {
	return errResult(http.StatusBadRequest, apiError{ErrorCode: "MALFORMED_QUERY", Message: msg})
}

func (s *Server) query(env *execEnv, soql string) result {
	m := queryRE.FindStringSubmatch(soql)
	if m == nil {
		return malformed("unexpected token: the simulator supports SELECT fields FROM Object [WHERE f = 'v' AND ...] [LIMIT n]")
	}
	o := s.store.object(m[2])
	if o == nil {
		return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_TYPE", Message: fmt.Sprintf("sObject type '%s' is not supported.", m[2])})
	}
	var fields []string
	for _, name := range strings.Split(m[1], ",") {
		name = strings.TrimSpace(name)
		f := o.field(name)
		if f == nil {
			return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on entity '%s'.", name, o.schema.Name)})
		}
		fields = append(fields, f.Name)
	}
	var conds []condition
	if m[3] != "" {
		for _, part := range andRE.Split(m[3], -1) {
			c := condRE.FindStringSubmatch(part)
			if c == nil {
				return malformed("unsupported condition: " + strings.TrimSpace(part))
			}
			f := o.field(c[1])
			if f == nil {
				return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on entity '%s'.", c[1], o.schema.Name)})
			}
			lit := c[2]
			switch {
			case strings.EqualFold(lit, "null"):
				conds = append(conds, condition{field: f, null: true})
			case strings.HasPrefix(lit, "'"):
				v := strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(lit[1 : len(lit)-1])
				conds = append(conds, condition{field: f, value: v})
			default:
				conds = append(conds, condition{field: f, value: strings.ToLower(lit)})
			}
		}
	}
	limit := -1
	if m[4] != "" {
		limit, _ = strconv.Atoi(m[4])
	}
	records := []any{}
	for _, r := range o.sorted() {
		if limit >= 0 && len(records) >= limit {
			break
		}
		if matches(r, conds) {
			records = append(records, recordJSON(env.version, o, r, fields))
		}
	}
	return result{status: http.StatusOK, body: map[string]any{"totalSize": len(records), "done": true, "records": records}}
}

func matches(r Record, conds []condition) bool {
	for _, c := range conds {
		v := r[c.field.Name]
		if c.null {
			if v != nil {
				return false
			}
			continue
		}
		if c.field.Type == "reference" || c.field.Type == "id" {
			// An id literal matches in its 15- or 18-character form.
			if id := canonicalID(c.value); id != "" && v == id {
				continue
			}
		}
		if !equalValue(v, c.value) {
			return false
		}
	}
	return true
}
