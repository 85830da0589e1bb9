package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The documentation speaks of the repository only: every relative link,
// and every ../ path in backticks, is inside it and exists, and nothing
// points at a machine's own directories. (A ./path in backticks is where
// the node runs, not a file of the repository.)
func TestDocsStayInTheRepository(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"), filepath.Join(root, "bench", "README.md"), filepath.Join(root, "bench", "kannel", "README.md"))
	link := regexp.MustCompile("\\]\\(([^)#]+)[^)]*\\)|`(\\.\\./[^`\\s]+)`")
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, doc)
		if strings.Contains(string(b), "/work/") || strings.Contains(string(b), "shared/") {
			t.Errorf("%s names a directory outside the repository", name)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1] + m[2]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := filepath.Clean(filepath.Join(filepath.Dir(doc), target))
			if !strings.HasPrefix(path, root+string(filepath.Separator)) {
				t.Errorf("%s points outside the repository: %s", name, target)
			} else if _, err := os.Stat(path); err != nil {
				t.Errorf("%s points at %s, which does not exist", name, target)
			}
		}
	}
}

// The licence the README and the API description name is in the
// repository, in full.
func TestLicense(t *testing.T) {
	b, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
		"9. Accepting Warranty or Additional Liability.", "END OF TERMS AND CONDITIONS"} {
		if !strings.Contains(text, want) {
			t.Errorf("LICENSE lacks %q", want)
		}
	}
	spec, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(spec), "license:\n    name: Apache-2.0") {
		t.Error("docs/openapi.yaml does not name Apache-2.0 as its licence")
	}
}
