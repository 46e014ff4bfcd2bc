package main

import (
	"flag"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// refRow is one setting of docs/configuration.md.
type refRow struct{ env, yaml, flag, def string }

// readConfigReference parses the settings table of docs/configuration.md.
func readConfigReference(t *testing.T) []refRow {
	t.Helper()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []refRow
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `VAULT_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 5 {
			t.Fatalf("row with %d cells: %s", len(cells), line)
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, refRow{env: strings.Trim(cells[0], "`"), yaml: cells[1], flag: strings.Trim(cells[2], "`"), def: cells[3]})
	}
	if len(rows) < 40 {
		t.Fatalf("only %d settings found in docs/configuration.md", len(rows))
	}
	return rows
}

// TestConfigReferenceMatchesCode: docs/configuration.md lists exactly the
// variables the configuration loader reads, exactly the YAML keys of the
// config struct and exactly the shared configuration flags, each variable
// with the right key and flag, and every default written as code there is
// the one vaultd starts with.
func TestConfigReferenceMatchesCode(t *testing.T) {
	rows := readConfigReference(t)
	byEnv := map[string]refRow{}
	for _, r := range rows {
		if _, dup := byEnv[r.env]; dup {
			t.Errorf("%s listed twice", r.env)
		}
		byEnv[r.env] = r
	}

	// The variables: whatever load asks the environment for.
	var asked []string
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := registerConfigFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := cf.load(fs, func(k string) string { asked = append(asked, k); return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range asked {
		if _, ok := byEnv[k]; !ok {
			t.Errorf("vaultd reads %s but docs/configuration.md does not list it", k)
		}
	}
	for _, r := range rows {
		if !slices.Contains(asked, r.env) {
			t.Errorf("docs/configuration.md lists %s, which vaultd does not read", r.env)
		}
	}

	// The YAML keys, with the field each one sets.
	field := map[string]reflect.Value{}
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		tag := v.Type().Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		field[tag] = v.Field(i)
	}
	documented := map[string]bool{}
	for _, r := range rows {
		if r.yaml == "*environment only*" {
			continue
		}
		key := strings.Trim(r.yaml, "`")
		documented[key] = true
		if _, ok := field[key]; !ok {
			t.Errorf("%s: YAML key %q is not a key of the configuration file", r.env, key)
		}
	}
	for key := range field {
		if !documented[key] {
			t.Errorf("YAML key %q is not in docs/configuration.md", key)
		}
	}
	// Each variable sets the field its YAML key names: set it, see it.
	for _, r := range rows {
		f, ok := field[strings.Trim(r.yaml, "`")]
		if !ok {
			continue
		}
		val := sampleValue(f)
		c, err := cf.load(fs, func(k string) string {
			if k == r.env {
				return val
			}
			// Settings that only go together.
			for _, group := range [][]string{{"VAULT_TLS_CERT", "VAULT_TLS_KEY"},
				{"VAULT_OIDC_ISSUER", "VAULT_OIDC_CLIENT_ID", "VAULT_OIDC_REDIRECT_URL", "VAULT_OIDC_MAPPING_FILE"}} {
				if slices.Contains(group, r.env) && slices.Contains(group, k) {
					return "x"
				}
			}
			return ""
		})
		if err != nil {
			t.Errorf("%s=%s: %v", r.env, val, err)
			continue
		}
		got := reflect.ValueOf(c)
		for i := range got.NumField() {
			if got.Type().Field(i).Tag.Get("yaml") == strings.Trim(r.yaml, "`") && reflect.DeepEqual(got.Field(i).Interface(), f.Interface()) {
				t.Errorf("%s=%s does not change the setting %s", r.env, val, r.yaml)
			}
		}
	}

	// The flags of the shared configuration.
	var flags []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			flags = append(flags, "--"+f.Name)
		}
	})
	var docFlags []string
	for _, r := range rows {
		if r.flag != "" {
			docFlags = append(docFlags, r.flag)
		}
	}
	slices.Sort(flags)
	slices.Sort(docFlags)
	if !slices.Equal(flags, docFlags) {
		t.Errorf("flags: code %v, docs/configuration.md %v", flags, docFlags)
	}

	// Defaults written as code are checked against what load produced.
	for _, r := range rows {
		f, ok := field[strings.Trim(r.yaml, "`")]
		def := r.def
		if !ok || strings.Contains(def, "<") {
			continue
		}
		switch {
		case def == "none":
			if !f.IsZero() && !(f.Kind() == reflect.Pointer && f.IsNil()) {
				t.Errorf("%s: documented default none, vaultd starts with %v", r.env, f.Interface())
			}
		case strings.HasPrefix(def, "`") && strings.HasSuffix(def, "`"):
			want := strings.Trim(def, "`")
			if d, ok := f.Interface().(time.Duration); ok {
				if w, err := time.ParseDuration(want); err != nil || w != d {
					t.Errorf("%s: documented default %q, vaultd starts with %v", r.env, want, d)
				}
				continue
			}
			if got := formatSetting(f); got != want {
				t.Errorf("%s: documented default %q, vaultd starts with %q", r.env, want, got)
			}
		}
	}
}

func formatSetting(f reflect.Value) string {
	switch x := f.Interface().(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return "?"
}

// sampleValue is a valid value unlike the default, for a setting's kind.
func sampleValue(f reflect.Value) string {
	switch x := f.Interface().(type) {
	case time.Duration:
		return "7m"
	case bool:
		return strconv.FormatBool(!x)
	case int, int64:
		return "77"
	case []string:
		return "10.9.9.9"
	case *string:
		return "reviewer"
	}
	switch f.String() {
	case "on":
		return "remote_apply"
	case "10y":
		return "7y"
	case "info":
		return "debug"
	}
	return "2021" // a valid edition, and a distinct string for every other setting
}
