package main

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/crvault/crvault/access"
)

// TestAccessConfig: VAULT_TOTP_REQUIRED_ROLES unset keeps the default, set
// empty turns the requirement off, a list replaces it, a typo is refused;
// VAULT_TRUSTED_PROXIES tolerates spaces.
func TestAccessConfig(t *testing.T) {
	load := func(env map[string]string, yaml string) (config, error) {
		t.Helper()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cf := registerConfigFlags(fs)
		var args []string
		if yaml != "" {
			file := filepath.Join(t.TempDir(), "vault.yaml")
			os.WriteFile(file, []byte(yaml), 0o600)
			args = []string{"--config", file}
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cf.load(fs, func(k string) string { return env[k] })
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		yaml string
		want []access.Role // nil: the default
	}{
		{"unset", nil, "", nil},
		{"empty", map[string]string{"VAULT_TOTP_REQUIRED_ROLES": totpNone}, "", []access.Role{}},
		{"list", map[string]string{"VAULT_TOTP_REQUIRED_ROLES": "operator, sysadmin"}, "", []access.Role{access.RoleOperator, access.RoleSysadmin}},
		{"yaml empty", nil, "totp_required_roles: \"\"\n", []access.Role{}},
	} {
		c, err := load(tc.env, tc.yaml)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := c.totpRoles()
		if (got == nil) != (tc.want == nil) || !slices.Equal(got, tc.want) {
			t.Errorf("%s: roles %#v, want %#v", tc.name, got, tc.want)
		}
	}
	if _, err := load(map[string]string{"VAULT_TOTP_REQUIRED_ROLES": "reviewr"}, ""); err == nil {
		t.Error("an unknown role in VAULT_TOTP_REQUIRED_ROLES was accepted")
	}
	c, err := load(map[string]string{"VAULT_TRUSTED_PROXIES": " 10.0.0.5 , 10.0.1.0/24,", "VAULT_ANONYMOUS_RATE": "30"}, "")
	if err != nil || !slices.Equal(c.TrustedProxies, []string{"10.0.0.5", "10.0.1.0/24"}) || c.AnonymousPerMinute != 30 {
		t.Fatalf("proxies %q, rate %d, %v", c.TrustedProxies, c.AnonymousPerMinute, err)
	}
	t.Setenv("VAULT_TOTP_REQUIRED_ROLES", "")
	if getenv("VAULT_TOTP_REQUIRED_ROLES") != totpNone {
		t.Error("an empty VAULT_TOTP_REQUIRED_ROLES does not turn the requirement off")
	}
}
