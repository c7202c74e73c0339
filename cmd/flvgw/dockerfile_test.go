package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileConfig applies the Dockerfile's own sed expressions to
// etc/gw.toml, as the image build does, and checks that the result is a
// valid config listening on all interfaces (what the README promises of
// the image), so that an edit to etc/gw.toml cannot silently leave the
// image on loopback or fail its build.
func TestDockerfileConfig(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// -e 's/^listen = "127.0.0.1:8080"/listen = ":8080"/'
	sedExpr := regexp.MustCompile(`-e 's/(\^[^/]*)/([^/]*)/'`)
	exprs := sedExpr.FindAllStringSubmatch(string(df), -1)
	if len(exprs) != 2 {
		t.Fatalf("Dockerfile: %d sed expressions, want the 2 for http.listen and rtmp.listen", len(exprs))
	}
	src, err := os.ReadFile("../../etc/gw.toml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	for _, e := range exprs {
		re := regexp.MustCompile(e[1])
		hits := 0
		for i, l := range lines {
			if re.MatchString(l) {
				lines[i] = re.ReplaceAllLiteralString(l, e[2])
				hits++
			}
		}
		if hits != 1 {
			t.Errorf("Dockerfile's %q matches %d lines of etc/gw.toml, want 1", e[1], hits)
		}
	}
	path := filepath.Join(t.TempDir(), "gw.toml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatalf("the image's config: %v", err)
	}
	if cfg.HTTP.Listen != ":8080" || cfg.RTMP.Listen != ":1935" {
		t.Fatalf("the image's config listens on http %q, rtmp %q; want :8080 and :1935", cfg.HTTP.Listen, cfg.RTMP.Listen)
	}
	for _, want := range []string{"EXPOSE 8080 1935", "./cmd/flvgw", "/etc/flvgw/gw.toml",
		"ARG REVISION", "-X " + linkedRevisionFlag + "=${REVISION}"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// linkedRevisionFlag is the variable a build without the git history
// names its commit in (the Dockerfile's REVISION).
const linkedRevisionFlag = "flvgw/gateway.linkedRevision"

// A build without the git history (the Docker image's context leaves .git
// out) names its commit with -ldflags -X, as the Dockerfile does, and
// -version says it.
func TestLinkedRevisionIsTheVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "flvgw")
	const commit = "0123456789abcdef0123456789abcdef01234567"
	build := exec.Command("go", "build", "-buildvcs=false", "-ldflags", "-X "+linkedRevisionFlag+"="+commit, "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "flvgw "+commit[:12]+" ") {
		t.Fatalf("-version printed %q, want the linked commit %s", got, commit[:12])
	}
}
