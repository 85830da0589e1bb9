package http

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// Paths of the routes; headerReceived needs the batch one before routing.
const (
	pathHealthz  = "/healthz"
	pathReadyz   = "/readyz"
	pathMessages = "/v1/messages"
	pathBatch    = "/v1/messages/batch"
	pathMessage  = "/v1/messages/{id}"
)

// handlerFunc serves one route. key is nil on public routes; param is the
// value of the pattern's {name} segment, if it has one. A returned error is
// written by Server.Error.
type handlerFunc func(ctx *fasthttp.RequestCtx, key *switchboard.Key, param []byte) error

// route is one method on one path pattern.
type route struct {
	method  string
	pattern string // a trailing "{name}" segment matches one path segment
	public  bool   // served without an API key, and while draining
	handle  handlerFunc
}

// name is the route for logs: its pattern, so log cardinality stays bounded.
func (r *route) name() string {
	if r == nil {
		return "unknown"
	}
	return r.pattern
}

// methodOf is a request's method as a metric label: the route's, or one
// of a few known methods, or "other", so its values stay bounded.
func (r *route) methodOf(ctx *fasthttp.RequestCtx) string {
	if r != nil {
		return r.method
	}
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
		if string(ctx.Method()) == m {
			return m
		}
	}
	return "other"
}

// routes lists every route the server serves; docs/openapi.yaml must
// describe each (the OpenAPI test checks).
func (s *Server) routes() []route {
	return []route{
		{method: "GET", pattern: pathHealthz, public: true, handle: s.handleHealthz},
		{method: "GET", pattern: pathReadyz, public: true, handle: s.handleReadyz},
		{method: "GET", pattern: pathMessages, handle: s.handleList},
		{method: "POST", pattern: pathMessages, handle: s.handleSubmit},
		{method: "POST", pattern: pathBatch, handle: s.handleBatch},
		{method: "GET", pattern: pathMessage, handle: s.handleMessage},
	}
}

// router matches requests to routes by scanning: there are a few, and a
// scan of byte comparisons allocates nothing. Static patterns win over ones with
// a parameter ("/v1/messages/batch" is never a message id).
type router struct {
	routes []route
	allow  map[string]string // pattern → its methods, for 405's Allow header
}

func newRouter(routes []route) router {
	// Static patterns first, so the first pattern that matches is the one.
	var static, param []route
	for _, r := range routes {
		if strings.IndexByte(r.pattern, '{') >= 0 {
			param = append(param, r)
		} else {
			static = append(static, r)
		}
	}
	rt := router{routes: append(static, param...), allow: map[string]string{}}
	for _, r := range rt.routes {
		if a := rt.allow[r.pattern]; a != "" {
			rt.allow[r.pattern] = a + ", " + r.method
		} else {
			rt.allow[r.pattern] = r.method
		}
	}
	return rt
}

// match returns the route for method and path with its parameter. With no
// route it returns the Allow list of the pattern the path matched (405), or
// "" when no pattern matched (404).
func (rt *router) match(method, path []byte) (r *route, param []byte, allow string) {
	pattern, found := "", false
	for i := range rt.routes {
		if param, found = matchPattern(rt.routes[i].pattern, path); found {
			pattern = rt.routes[i].pattern
			break
		}
	}
	if !found {
		return nil, nil, ""
	}
	for i := range rt.routes {
		r := &rt.routes[i]
		if r.pattern == pattern && string(method) == r.method {
			return r, param, ""
		}
	}
	return nil, nil, rt.allow[pattern]
}

// matchPattern matches a path against a pattern with at most one {name}
// segment, which matches one non-empty segment ("/v1/messages/{id}",
// "/admin/v1/keys/{id}/revoke").
func matchPattern(pattern string, path []byte) (param []byte, ok bool) {
	i := strings.IndexByte(pattern, '{')
	if i < 0 {
		return nil, string(path) == pattern
	}
	prefix, suffix := pattern[:i], pattern[i+strings.IndexByte(pattern[i:], '}')+1:]
	if len(path) <= len(prefix)+len(suffix) || string(path[:len(prefix)]) != prefix ||
		string(path[len(path)-len(suffix):]) != suffix {
		return nil, false
	}
	rest := path[len(prefix) : len(path)-len(suffix)]
	if strings.IndexByte(string(rest), '/') >= 0 {
		return nil, false
	}
	return rest, true
}
