package harness

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// A scenario file (bench/scenarios/*.yaml) holds flag settings: each key
// is a flag's name with "_" for "-" ("body_mix: short:90,long:10" is
// --body-mix), and a nested mapping prefixes its keys with its own name
// ("ramp: {step: 2000}" is --ramp-step). "name" and "description" are
// printed. Flags given on the command line override the file.

// loadScenario applies the file at path to fs, skipping the flags in
// explicit; it returns the scenario's name and description.
func loadScenario(fs *flag.FlagSet, path string, explicit map[string]bool) (name, desc string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return "", "", fmt.Errorf("%s: empty", path)
	}
	settings := map[string]string{}
	if err := flatten(doc.Content[0], "", settings); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	name, desc = settings["name"], settings["description"]
	delete(settings, "name")
	delete(settings, "description")
	for k, v := range settings {
		f := fs.Lookup(k)
		if f == nil || k == "scenario" {
			return "", "", fmt.Errorf("%s: %q is not a setting (no flag --%s)", path, k, k)
		}
		if explicit[k] {
			continue
		}
		if err := fs.Set(k, v); err != nil {
			return "", "", fmt.Errorf("%s: %s: %w", path, k, err)
		}
	}
	return name, desc, nil
}

// flatten turns a mapping into flag names and values.
func flatten(n *yaml.Node, prefix string, out map[string]string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of settings", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := prefix + strings.ReplaceAll(k.Value, "_", "-")
		switch v.Kind {
		case yaml.MappingNode:
			if err := flatten(v, name+"-", out); err != nil {
				return err
			}
		case yaml.ScalarNode:
			if _, dup := out[name]; dup {
				return fmt.Errorf("line %d: %s set twice", k.Line, name)
			}
			out[name] = v.Value
		default:
			return fmt.Errorf("line %d: %s: want a value or a mapping", k.Line, name)
		}
	}
	return nil
}
