package switchboard

import "strings"

// Route sends destinations that start with Prefix to Carriers, tried in
// order: the first is primary, the rest take over when it is unhealthy.
// Prefixes are written like destinations ("+44", "+4477") or empty for the
// default route; the longest matching prefix wins.
type Route struct {
	Prefix   string
	Carriers []string
}

// Routes is a routing table, longest prefix first, with prefixes already
// stripped of "+" so matching a destination allocates and copies nothing.
type Routes []Route

// NewRoutes sorts routes so that Match finds the longest prefix first.
func NewRoutes(rs []Route) Routes {
	out := make(Routes, len(rs))
	for i, r := range rs {
		out[i] = Route{Prefix: normalPrefix(r.Prefix), Carriers: r.Carriers}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j].Prefix) > len(out[j-1].Prefix); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Match returns the carriers for a destination ("+" and digits), or nil.
func (rs Routes) Match(to string) []string {
	if len(to) > 0 && to[0] == '+' {
		to = to[1:]
	}
	for _, r := range rs {
		if strings.HasPrefix(to, r.Prefix) {
			return r.Carriers
		}
	}
	return nil
}

func normalPrefix(p string) string { return strings.TrimPrefix(p, "+") }
