package http

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-sms/switchboard"
)

// docs/admin-openapi.yaml describes every route of the admin listener
// and nothing else; protected routes answer 401 and 429, POSTs with a
// body 415; its error codes are the ones the admin API answers with.
func TestAdminOpenAPIRoutes(t *testing.T) {
	b, err := os.ReadFile("../docs/admin-openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if v := get(t, d, "openapi"); v != "3.0.3" {
		t.Errorf("openapi %v", v)
	}
	paths := get(t, d, "paths").(doc)
	a := &AdminServer{}
	routes := map[string]bool{}
	for _, r := range a.routes() {
		key := strings.ToLower(r.method) + " " + r.pattern
		routes[key] = true
		pathItem, _ := paths[r.pattern].(doc)
		op, ok := pathItem[strings.ToLower(r.method)].(doc)
		if !ok {
			t.Errorf("%s is not in docs/admin-openapi.yaml", key)
			continue
		}
		responses := op["responses"].(doc)
		if responses["405"] == nil {
			t.Errorf("%s: no 405", key)
		}
		security, hasSecurity := op["security"].([]any)
		switch {
		case r.public && !(hasSecurity && len(security) == 0):
			t.Errorf("%s needs no token but the spec does not say security: []", key)
		case !r.public && (responses["401"] == nil || responses["404"] == nil || responses["429"] == nil):
			t.Errorf("%s: no 401, 404 (admin API off) or 429", key)
		}
		if _, body := op["requestBody"]; body && responses["415"] == nil {
			t.Errorf("%s takes a body but has no 415", key)
		}
		if needsCatalog(r.pattern) && r.method != "GET" && !strings.HasSuffix(r.pattern, "/suspend") &&
			!strings.HasSuffix(r.pattern, "/resume") && !strings.HasSuffix(r.pattern, "/revoke") && responses["409"] == nil {
			t.Errorf("%s changes items but has no 409 (managed_by_config, conflict)", key)
		}
	}
	for path, ops := range paths {
		for method := range ops.(doc) {
			if method != "parameters" && !routes[method+" "+path] {
				t.Errorf("the spec has %s %s, the admin listener does not", method, path)
			}
		}
	}
	codes := get(t, d, "components", "schemas", "ErrorCode", "enum").([]any)
	for _, c := range []string{switchboard.EMANAGED, switchboard.EINVALID, switchboard.ECONFLICT, switchboard.EUNAUTHORIZED} {
		if !slices.Contains(codes, any(c)) {
			t.Errorf("ErrorCode lacks %s", c)
		}
		if status, ok := statusOf(c); !ok || status >= 500 {
			t.Errorf("%s maps to %d", c, status)
		}
	}
	if s, _ := statusOf(switchboard.EMANAGED); s != 409 {
		t.Errorf("managed_by_config is %d, want 409", s)
	}
	// The message the cancel answers with is the public API's.
	if _, err := os.Stat("../docs/openapi.yaml"); err != nil {
		t.Fatal(err)
	}
	pub := loadOpenAPI(t)
	get(t, pub, "components", "schemas", "Message")
}
