package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The YAML library's own errors speak of Go ("cannot unmarshal !!seq into
// string", "field x not found in type main.NodeConfig"). The file is
// checked first against the Config struct, node by node, so each problem
// is reported in the configuration's words, with its line and setting:
//
//	line 3: node.http: want a string, got a list
//	line 7: unknown key "hots" in carriers[0]

// decodeFile reads one YAML document into c, after checking that it has
// only known keys and values of the right types; every problem found is
// returned, joined.
func (c *Config) decodeFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil // an empty file: defaults and environment only
		}
		return yamlSyntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return yamlSyntaxError(err)
		}
		return fmt.Errorf("line %d: a second YAML document; the file must hold one", extra.Line)
	}
	emptyIsUnset(&doc)
	var problems []error
	checkNode(&doc, configType, "", &problems)
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	if err := doc.Decode(c); err != nil {
		// checkNode should have found it; say it without the library's prefix.
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// emptyIsUnset makes every empty value in the file (`drain_period: ""`)
// no value, as an empty variable or --set is: the setting's default, not
// a value of the wrong kind.
func emptyIsUnset(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			emptyIsUnset(c)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			emptyIsUnset(n.Content[i])
		}
	case yaml.ScalarNode:
		if n.Value == "" {
			n.Tag = "!!null"
		}
	}
}

// yamlSyntaxError is a YAML syntax error in the file's words: "line 3:
// did not find expected key", without the library's "yaml: " prefix.
func yamlSyntaxError(err error) error {
	return fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// checkNode checks node n against the type t of the setting or section at
// path, and appends a problem for each key that names nothing and each
// value that is not of its setting's kind.
func checkNode(n *yaml.Node, t reflect.Type, path string, problems *[]error) {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // no value: the setting keeps its zero value, then its default
	}
	add := func(format string, args ...any) {
		*problems = append(*problems, fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, args...)))
	}
	switch {
	case isLeaf(t):
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			add("%s: want %s, got %s", path, wantOf(t), gotOf(n))
		}
	case isList(t):
		if n.Kind != yaml.SequenceNode {
			add("%s: want a list, got %s", path, gotOf(n))
			return
		}
		for i, item := range n.Content {
			checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
		}
	case isSection(t):
		if n.Kind != yaml.MappingNode {
			where := path
			if where == "" {
				where = "the file"
			}
			add("%s: want a mapping of settings (name: value), got %s", where, gotOf(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fieldByName(t, k.Value)
			if !ok {
				where := path
				if where == "" {
					where = "the top level"
				}
				*problems = append(*problems, fmt.Errorf("line %d: unknown key %q in %s", k.Line, k.Value, where))
				continue
			}
			sub := k.Value
			if path != "" {
				sub = path + "." + k.Value
			}
			checkNode(v, f.Type, sub, problems)
		}
	}
}

// fieldByName returns the field of struct type t whose YAML name is name.
func fieldByName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// wantOf says what a setting of type t takes.
func wantOf(t reflect.Type) string {
	switch leafType(t) {
	case "string":
		return "a string"
	case "integer":
		return "a whole number"
	case "number":
		return "a number"
	case "boolean":
		return "true or false"
	case "duration":
		return "a duration like 30s, 5m or 72h"
	case "list":
		return "a list of strings"
	}
	return leafType(t)
}

// gotOf says what a YAML node is, in the words of the file.
func gotOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping (name: value)"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}
