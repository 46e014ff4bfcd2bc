// Package deploy validates the deployment files of this directory: no
// container engine runs where the tests run, so the compose file is loaded
// and validated against the compose specification, the Kubernetes
// manifests are decoded strictly into the API types, and the Dockerfile's
// build is run and its output checked to be static. It is a module of its
// own so that the compose and Kubernetes libraries stay out of the
// server's dependencies.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// secretVars are the settings that must never be written into a manifest
// or compose file: they come from mounted files or Secret references.
var secretVars = []string{"VAULT_MASTER_KEY", "VAULT_S3_SECRET_KEY", "VAULT_METRICS_TOKEN", "VAULT_OIDC_CLIENT_SECRET", "VAULT_DATABASE_URL", "VAULT_S3_ACCESS_KEY"}

// documentedVars reads the variables of docs/configuration.md.
func documentedVars(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(VAULT_[A-Z0-9_]+)`").FindAllStringSubmatch(string(b), -1) {
		vars[m[1]] = true
	}
	if len(vars) < 40 {
		t.Fatalf("only %d variables in docs/configuration.md", len(vars))
	}
	return vars
}

// TestCompose loads docker-compose.yml with the compose specification's
// own loader (schema validation included) and checks the deployment it
// describes: PostgreSQL, MinIO, two vaultd replicas on them behind a TLS
// proxy, vaultd hardened (non-root, read-only root, no capabilities,
// limits), keys and credentials as secrets, and only documented settings.
func TestCompose(t *testing.T) {
	ctx := context.Background()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithWorkingDirectory("."), cli.WithName("crvault"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("compose file does not load or validate: %v", err)
	}
	for _, name := range []string{"postgres", "minio", "vaultd-1", "vaultd-2", "proxy"} {
		if _, ok := p.Services[name]; !ok {
			t.Fatalf("no %s service", name)
		}
	}
	docs := documentedVars(t)
	for _, name := range []string{"vaultd-1", "vaultd-2"} {
		s := p.Services[name]
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s is not built from deploy/Dockerfile: %+v", name, s.Build)
		}
		if !s.ReadOnly {
			t.Errorf("%s: root filesystem not read-only", name)
		}
		if s.User == "" || strings.HasPrefix(s.User, "0") || strings.HasPrefix(s.User, "root") {
			t.Errorf("%s runs as %q", name, s.User)
		}
		if !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s keeps capabilities", name)
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0 || s.Deploy.Resources.Limits.NanoCPUs == 0 {
			t.Errorf("%s has no CPU and memory limits", name)
		}
		env := s.Environment
		for k := range env {
			if strings.HasPrefix(k, "VAULT_") && !docs[k] {
				t.Errorf("%s sets %s, which docs/configuration.md does not know", name, k)
			}
			if slices.Contains(secretVars, k) {
				t.Errorf("%s sets secret %s in the compose file; mount it as a secret", name, k)
			}
		}
		if v := env["VAULT_S3_ENDPOINT"]; v == nil || !strings.HasPrefix(*v, "minio:") {
			t.Errorf("%s does not use the MinIO service", name)
		}
		secrets := map[string]string{}
		for _, sec := range s.Secrets {
			secrets[sec.Source] = "/run/secrets/" + sec.Source
		}
		// Keys are mounted files the settings point at.
		for _, k := range []string{"VAULT_MASTER_KEY_FILE", "VAULT_AUDIT_KEY_FILE"} {
			v := env[k]
			if v == nil || !slices.Contains(mapValues(secrets), *v) {
				t.Errorf("%s: %s is not a mounted secret (%v)", name, k, v)
			}
		}
		if !slices.Contains(s.Command, "--config") || secrets["vaultd.yaml"] == "" {
			t.Errorf("%s: database and S3 credentials do not come from the secret configuration file", name)
		}
		for _, dep := range []string{"postgres", "minio"} {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", name, dep)
			}
		}
	}
	proxy := p.Services["proxy"]
	published := false
	for _, port := range proxy.Ports {
		published = published || (port.Target == 443 && port.Published == "443")
	}
	if !published || len(proxy.Secrets) < 2 {
		t.Errorf("the proxy does not terminate TLS on 443 with a mounted certificate: %+v", proxy.Ports)
	}
	for _, name := range []string{"vaultd-1", "vaultd-2"} {
		if len(p.Services[name].Ports) > 0 {
			t.Errorf("%s publishes ports: plain HTTP must only be reachable through the proxy", name)
		}
	}
	caddy, err := os.ReadFile("caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reverse_proxy vaultd-1:8080 vaultd-2:8080", "health_uri /readyz", "tls /run/secrets/tls.crt /run/secrets/tls.key"} {
		if !bytes.Contains(caddy, []byte(want)) {
			t.Errorf("Caddyfile lacks %q", want)
		}
	}
	if pg := p.Services["postgres"]; pg.Environment["POSTGRES_PASSWORD"] != nil || pg.Environment["POSTGRES_PASSWORD_FILE"] == nil {
		t.Error("the PostgreSQL password is not a secret file")
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// manifests decodes every document of the Kubernetes manifests strictly
// (an unknown or misspelt field fails) into its API type.
func manifests(t *testing.T) (deps []appsv1.Deployment, svcs []corev1.Service, pdbs []policyv1.PodDisruptionBudget, cms []corev1.ConfigMap, kinds []string) {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			strict := func(v any) {
				if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
					t.Fatalf("%s #%d (%s): %v", f, i, meta.Kind, err)
				}
			}
			kinds = append(kinds, meta.Kind)
			switch meta.Kind {
			case "Deployment":
				var d appsv1.Deployment
				strict(&d)
				deps = append(deps, d)
			case "Service":
				var s corev1.Service
				strict(&s)
				svcs = append(svcs, s)
			case "PodDisruptionBudget":
				var p policyv1.PodDisruptionBudget
				strict(&p)
				pdbs = append(pdbs, p)
			case "ConfigMap":
				var c corev1.ConfigMap
				strict(&c)
				cms = append(cms, c)
			case "NetworkPolicy":
				strict(&networkingv1.NetworkPolicy{})
			case "Namespace":
				strict(&corev1.Namespace{})
			case "Kustomization":
				var k struct {
					APIVersion string   `json:"apiVersion"`
					Kind       string   `json:"kind"`
					Namespace  string   `json:"namespace"`
					Resources  []string `json:"resources"`
				}
				strict(&k)
				for _, r := range k.Resources {
					if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
						t.Errorf("kustomization names %s: %v", r, err)
					}
				}
				if len(k.Resources) != len(files)-1 {
					t.Errorf("kustomization lists %d resources, the directory has %d", len(k.Resources), len(files)-1)
				}
			default:
				t.Fatalf("%s #%d: unexpected kind %q", f, i, meta.Kind)
			}
		}
	}
	return
}

// TestKubernetes: the manifests decode strictly into the Kubernetes API
// types, and the Deployment is what the operations guide promises: two
// replicas, probes on /healthz and /readyz at the container's API port,
// limits, a non-root read-only container without privileges, keys mounted
// from a Secret and credentials referenced from it (never inlined), only
// documented settings; a PodDisruptionBudget keeps one replica up.
func TestKubernetes(t *testing.T) {
	deps, svcs, pdbs, cms, kinds := manifests(t)
	for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "NetworkPolicy"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s", k)
		}
	}
	if slices.Contains(kinds, "Secret") {
		t.Error("a Secret is written into the manifests; create it from files (deploy/README.md)")
	}
	if len(deps) != 1 || len(pdbs) != 1 || len(svcs) != 1 {
		t.Fatalf("%d deployments, %d budgets, %d services", len(deps), len(pdbs), len(svcs))
	}
	d := deps[0]
	docs := documentedVars(t)
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas %v, want at least 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod does not run as non-root")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; vaultd does not talk to the Kubernetes API")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	port := map[string]int32{}
	for _, p := range c.Ports {
		port[p.Name] = p.ContainerPort
	}
	env := map[string]string{}
	for _, cm := range cms {
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || ef.ConfigMapRef.Name != cms[0].Name {
			t.Errorf("envFrom %+v is not the config map", ef)
		}
	}
	addr := env["VAULT_ADDR"]
	if !strings.HasSuffix(addr, fmt.Sprintf(":%d", port["http"])) {
		t.Errorf("VAULT_ADDR %q does not listen on the container's http port %d", addr, port["http"])
	}
	if !strings.HasSuffix(env["VAULT_METRICS_ADDR"], fmt.Sprintf(":%d", port["metrics"])) {
		t.Errorf("VAULT_METRICS_ADDR %q is not the metrics port %d", env["VAULT_METRICS_ADDR"], port["metrics"])
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe missing", what)
			return
		}
		target := p.HTTPGet.Port.IntVal
		if p.HTTPGet.Port.StrVal != "" {
			target = port[p.HTTPGet.Port.StrVal]
		}
		if p.HTTPGet.Path != path || target != port["http"] || target == 0 {
			t.Errorf("%s probe: %s on port %v, want %s on %d", what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path, port["http"])
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem not read-only")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("container may escalate privileges or keeps capabilities")
	}
	// Settings: documented; secrets only by reference; key files mounted.
	for k := range env {
		if strings.HasPrefix(k, "VAULT_") && !docs[k] {
			t.Errorf("config map sets %s, which docs/configuration.md does not know", k)
		}
		if slices.Contains(secretVars, k) {
			t.Errorf("config map holds secret %s", k)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "VAULT_") && !docs[e.Name] {
			t.Errorf("env sets %s, which docs/configuration.md does not know", e.Name)
		}
		if slices.Contains(secretVars, e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("%s is inlined, not referenced from a Secret", e.Name)
		}
		env[e.Name] = "(from secret)"
	}
	if env["VAULT_DATABASE_URL"] == "" || !strings.HasPrefix(env["VAULT_DATABASE_URL"], "(") {
		t.Error("no database URL from the Secret")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	secretVolumes := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = true
		}
	}
	for _, k := range []string{"VAULT_MASTER_KEY_FILE", "VAULT_AUDIT_KEY_FILE"} {
		path := env[k]
		ok := false
		for name, m := range mounts {
			if secretVolumes[name] && m.ReadOnly && strings.HasPrefix(path, m.MountPath+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s=%q is not on a read-only Secret mount", k, path)
		}
	}
	if _, ok := mounts["tmp"]; !ok {
		t.Error("no writable /tmp volume beside the read-only root")
	}
	// The budget covers these pods and keeps one up.
	p := pdbs[0]
	if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.IntValue() < 1 {
		t.Error("the disruption budget does not keep a replica up")
	}
	if p.Spec.Selector == nil || !subset(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("the disruption budget does not select the vaultd pods")
	}
	if !subset(svcs[0].Spec.Selector, d.Spec.Template.Labels) {
		t.Error("the service does not select the vaultd pods")
	}
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestDockerfileBuildsStaticNonRoot runs the Dockerfile's own `go build`
// line and checks the binary has no program interpreter and needs no
// shared library (it runs on an empty base image), and that the image
// runs as a non-root user from an empty base.
func TestDockerfileBuildsStaticNonRoot(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var build, user, lastFrom string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			build = strings.TrimPrefix(line, "RUN ")
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimPrefix(line, "USER ")
		case strings.HasPrefix(line, "FROM "):
			lastFrom = line
		}
	}
	if lastFrom != "FROM scratch" {
		t.Errorf("final stage %q, want FROM scratch", lastFrom)
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("image runs as %q", user)
	}
	if !strings.Contains(build, "-o /out/vaultd") {
		t.Fatalf("no go build to /out/vaultd in the Dockerfile: %q", build)
	}
	out := filepath.Join(t.TempDir(), "vaultd")
	cmd := exec.Command("sh", "-c", strings.Replace(build, "-o /out/vaultd", "-o "+out, 1))
	cmd.Dir = ".."
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, o)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("shared libraries needed: %v %v", libs, err)
	}
	// It runs: the version of the configuration it reads is the code's.
	if o, err := exec.Command(out, "help").CombinedOutput(); err != nil {
		t.Fatalf("static vaultd does not run: %v\n%s", err, o)
	}
}
