package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// settings flattens a config into its keys (section.key, from the toml
// tags) and their values, so that a nil and an empty list compare equal
// and a difference names the key.
func settings(cfg Config) map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		section := strings.Split(v.Type().Field(i).Tag.Get("toml"), ",")[0]
		sv := v.Field(i)
		if sv.Kind() != reflect.Struct {
			continue // [[upstream]]: no defaults
		}
		for j := range sv.NumField() {
			key := strings.Split(sv.Type().Field(j).Tag.Get("toml"), ",")[0]
			out[section+"."+key] = fmt.Sprintf("%v", sv.Field(j).Interface())
		}
	}
	return out
}

func diffSettings(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for _, k := range sortedKeys(want) {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s does not state %s (default %s)", what, k, want[k])
			continue
		}
		if g != want[k] {
			t.Errorf("%s states %s = %s, but a file without the key gets %s", what, k, g, want[k])
		}
	}
}

// TestDocumentedDefaults: etc/gw.toml and the README's configuration table
// state every key with its default; a file that leaves a key out must get
// what they state. That etc/gw.toml states each key is checked on its
// own: the values it loads to are the defaults' for a key it leaves out.
func TestDocumentedDefaults(t *testing.T) {
	want := settings(defaultConfig())

	gw, err := loadConfig("../../etc/gw.toml")
	if err != nil {
		t.Fatal(err)
	}
	diffSettings(t, "etc/gw.toml", settings(gw), want)
	md, err := toml.DecodeFile("../../etc/gw.toml", new(Config))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range sortedKeys(want) {
		if !md.IsDefined(strings.Split(k, ".")...) {
			t.Errorf("etc/gw.toml does not state %s (default %s)", k, want[k])
		}
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| (`[a-z_]+\\.[a-z0-9_]+`(?:, `[a-z_]+\\.[a-z0-9_]+`)*) \\| `([^`]*)`")
	sections := map[string][]string{}
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		value := m[2]
		if _, err := toml.Decode("v = "+value, new(map[string]any)); err != nil {
			value = fmt.Sprintf("%q", value) // a string or a duration
		}
		for _, key := range strings.Split(m[1], ", ") {
			key = strings.Trim(key, "`")
			sec, name, _ := strings.Cut(key, ".")
			sections[sec] = append(sections[sec], name+" = "+value)
			documented[key] = true
		}
	}
	var file strings.Builder
	for sec, lines := range sections {
		fmt.Fprintf(&file, "[%s]\n%s\n", sec, strings.Join(lines, "\n"))
	}
	path := filepath.Join(t.TempDir(), "readme.toml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	fromReadme, err := loadConfig(path)
	if err != nil {
		t.Fatalf("the README's defaults as a file: %v\n%s", err, file.String())
	}
	got := settings(fromReadme)
	for k := range got {
		if !documented[k] {
			delete(got, k)
		}
	}
	diffSettings(t, "the README's configuration table", got, want)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
