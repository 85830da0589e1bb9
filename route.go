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

// Routes is a routing table, longest prefix first.
type Routes []Route

// NewRoutes sorts routes so that Match finds the longest prefix first.
func NewRoutes(rs []Route) Routes {
	out := append(Routes(nil), rs...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(normalPrefix(out[j].Prefix)) > len(normalPrefix(out[j-1].Prefix)); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Match returns the carriers for a destination ("+" and digits), or nil.
func (rs Routes) Match(to string) []string {
	to = strings.TrimPrefix(to, "+")
	for _, r := range rs {
		if strings.HasPrefix(to, normalPrefix(r.Prefix)) {
			return r.Carriers
		}
	}
	return nil
}

func normalPrefix(p string) string { return strings.TrimPrefix(p, "+") }
