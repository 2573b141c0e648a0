package devices

import (
	"strings"
)

// Unlimited reports whether the scope places no limit on either axis.
func (sc Scope) Unlimited() bool { return len(sc.Departments) == 0 && len(sc.Regions) == 0 }

// AllowsSite reports whether a caller with this scope may see the site: its department is one
// of Departments (exact) and its region code starts with one of Regions. An empty list does not
// limit; a blank entry matches nothing, so a scope typed wrong denies instead of allowing all.
func (sc Scope) AllowsSite(s Site) bool {
	if len(sc.Departments) > 0 {
		ok := false
		for _, d := range sc.Departments {
			if d = strings.TrimSpace(d); d != "" && d == s.Department {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(sc.Regions) > 0 {
		ok := false
		for _, r := range sc.Regions {
			if r = NormalizeCode(r); r != "" && strings.HasPrefix(s.RegionCode, r) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// scopeSQL appends the WHERE conditions for sc on a sites table aliased as alias.
func scopeSQL(sc Scope, alias string, where []string, args []any) ([]string, []any) {
	if len(sc.Departments) > 0 {
		var in []string
		for _, d := range sc.Departments {
			if d = strings.TrimSpace(d); d != "" {
				in = append(in, "?")
				args = append(args, d)
			}
		}
		if len(in) == 0 {
			where = append(where, "1 = 0")
		} else {
			where = append(where, alias+".department IN ("+strings.Join(in, ", ")+")")
		}
	}
	if len(sc.Regions) > 0 {
		var or []string
		for _, r := range sc.Regions {
			if r = NormalizeCode(r); r != "" {
				or = append(or, "substr("+alias+".region_code, 1, ?) = ?")
				args = append(args, len(r), r)
			}
		}
		if len(or) == 0 {
			where = append(where, "1 = 0")
		} else {
			where = append(where, "("+strings.Join(or, " OR ")+")")
		}
	}
	return where, args
}
