package testkit

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxModule is where Debian's libnginx-mod-rtmp puts the RTMP module.
const nginxModule = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// Nginx is Debian's nginx with its RTMP module, run by a test as a foreign
// origin on free loopback ports with a prefix of its own.
type Nginx struct {
	RTMPAddr string
	HTTPAddr string // serves /stat (rtmp_stat)
	cmd      *exec.Cmd
	dir      string
}

// NginxSkipReason says why nginx-rtmp cannot run here, or "" if it can.
func NginxSkipReason() string {
	if _, err := exec.LookPath("nginx"); err != nil {
		return "nginx not installed (apt-get install -y nginx libnginx-mod-rtmp); .ci/run installs it"
	}
	if _, err := os.Stat(nginxModule); err != nil {
		return "nginx RTMP module not installed (apt-get install -y libnginx-mod-rtmp); .ci/run installs it"
	}
	return ""
}

// FreePort returns a loopback address that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartNginx runs nginx-rtmp with an application "live" (live on, and
// idle_streams off so that a play of an unpublished stream is answered
// with StreamNotFound) until the test ends.
func StartNginx(t testing.TB) *Nginx {
	t.Helper()
	if reason := NginxSkipReason(); reason != "" {
		if PeersRequired() {
			t.Fatalf("%s, and FLVGW_REQUIRE_PEERS=1", reason)
		}
		t.Skip(reason)
	}
	n := &Nginx{RTMPAddr: FreePort(t), HTTPAddr: FreePort(t), dir: t.TempDir()}
	conf := fmt.Sprintf(`load_module %[1]s;
daemon off;
master_process off;
worker_processes 1;
error_log %[2]s/error.log info;
pid %[2]s/nginx.pid;
events { worker_connections 4096; }
rtmp {
  server {
    listen %[3]s;
    application live {
      live on;
      idle_streams off;
    }
  }
}
http {
  access_log off;
%[5]s  server {
    listen %[4]s;
    location /stat { rtmp_stat all; }
  }
}
`, nginxModule, n.dir, n.RTMPAddr, n.HTTPAddr, tempPaths(n.dir))
	n.cmd = runNginx(t, n.dir, conf, n.RTMPAddr)
	return n
}

// StartNginxHTTP runs Debian's nginx (no RTMP module needed) with httpConf
// in its http context until the test ends, and returns once it accepts on
// listen, an address httpConf listens on.
func StartNginxHTTP(t testing.TB, httpConf, listen string) {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		reason := "nginx not installed (apt-get install -y nginx); .ci/run installs it"
		if PeersRequired() {
			t.Fatalf("%s, and FLVGW_REQUIRE_PEERS=1", reason)
		}
		t.Skip(reason)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte(httpConf), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
error_log %[1]s/error.log info;
pid %[1]s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
%[2]s  include %[1]s/site.conf;
}
`, dir, tempPaths(dir))
	runNginx(t, dir, conf, listen)
}

// tempPaths keeps nginx's temporary files under dir, its prefix, rather
// than in the system's nginx directories.
func tempPaths(dir string) string {
	var b strings.Builder
	for _, kind := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		name := kind
		if kind == "client_body" {
			name = "body"
		}
		fmt.Fprintf(&b, "  %s_temp_path %s/%s;\n", kind, dir, name)
	}
	return b.String()
}

// runNginx starts nginx with conf in dir (its prefix), stops it when the
// test ends, and waits until it accepts on addr.
func runNginx(t testing.TB, dir, conf, addr string) *exec.Cmd {
	t.Helper()
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nginx", "-p", dir, "-c", path)
	out, _ := os.Create(filepath.Join(dir, "stderr.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = out.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "stderr.log"))
			elog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start:\n%s\n%s", log, elog)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type rtmpStat struct {
	Streams []struct {
		Name    string `xml:"name"`
		Clients []struct {
			Address    string    `xml:"address"`
			Publishing *struct{} `xml:"publishing"`
		} `xml:"client"`
	} `xml:"server>application>live>stream"`
}

// Publishing reports whether nginx has a publisher for stream.
func (n *Nginx) Publishing(ctx context.Context, stream string) bool {
	body, err := get(ctx, "http://"+n.HTTPAddr+"/stat")
	if err != nil {
		return false
	}
	var st rtmpStat
	if err := xml.Unmarshal(body, &st); err != nil {
		return false
	}
	for _, s := range st.Streams {
		for _, c := range s.Clients {
			if s.Name == stream && c.Publishing != nil {
				return true
			}
		}
	}
	return false
}

// Players returns how many clients play stream (publishers not counted),
// read from nginx's rtmp_stat page.
func (n *Nginx) Players(ctx context.Context, stream string) (int, error) {
	body, err := get(ctx, "http://"+n.HTTPAddr+"/stat")
	if err != nil {
		return 0, err
	}
	var st rtmpStat
	if err := xml.Unmarshal(body, &st); err != nil {
		return 0, fmt.Errorf("rtmp_stat: %w", err)
	}
	players := 0
	for _, s := range st.Streams {
		if s.Name != stream {
			continue
		}
		for _, c := range s.Clients {
			if c.Publishing == nil {
				players++
			}
		}
	}
	return players, nil
}
