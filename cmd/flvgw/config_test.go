package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := loadConfig(write("[pool]\nidle_timeout = \"5s\"\n[rtmp]\nlisten = \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pool.IdleTimeout != 5*time.Second || cfg.RTMP.Listen != "" || cfg.Pool.MaxEntries != 1024 {
		t.Fatalf("decoded %+v", cfg)
	}
	if _, err := loadConfig("../../etc/gw.toml"); err != nil {
		t.Fatalf("etc/gw.toml: %v", err)
	}
	for _, tc := range []struct{ body, mention string }{
		{"[http]\nlisen = \"x\"\n", "unknown key http.lisen"},
		{"[pool]\nidle_timeout = 30\n", "pool.idle_timeout"},
		{"[pool]\nbuffer_tags = 3\n", "pool.buffer_tags"},
		{"[http]\nstart_timeout = \"-1s\"\n", "http.start_timeout"},
		{"[rtmp]\nlisten = \"1935\"\n", "rtmp.listen"},
		{"[log]\nformat = \"xml\"\n", "log.format"},
		{"not toml", "c.toml"},
	} {
		_, err := loadConfig(write(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%q: %v, want a message naming %s", tc.body, err, tc.mention)
		}
	}
}

func TestCheckFlag(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"-check", "-config", "../../etc/gw.toml"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "ok") {
		t.Fatalf("output %q", out.String())
	}
	if err := run([]string{"-check", "-config", "/nonexistent.toml"}, &out); err == nil {
		t.Fatal("missing config accepted")
	}
}
