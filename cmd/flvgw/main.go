// Command flvgw is an HTTP-FLV relay gateway: it takes RTMP publishes on
// its embedded origin and plays every stream to any number of HTTP-FLV
// viewers from one shared relay entry.
//
//	flvgw -config etc/gw.toml                     serve
//	flvgw -check -config F                        validate F and exit
//	flvgw -sign app/stream -secret S [-ttl 1h]    print a signed query and exit
//	flvgw -version                                print the build (commit, Go) and exit
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"flvgw/gateway"
	"flvgw/gateway/access"
	"flvgw/origin"
	"flvgw/pool"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp): // -h: the usage is printed
	case err != nil:
		fmt.Fprintln(os.Stderr, "flvgw:", err)
		os.Exit(1)
	}
}

// run is flvgw with its arguments: -sign prints its query and -version the
// build to stdout (for a script to take), everything else, the log
// included, goes to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("flvgw", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "etc/gw.toml", "configuration file (TOML)")
	check := flags.Bool("check", false, "validate the configuration and exit")
	sign := flags.String("sign", "", "print a signed query for this stream key (app/stream) and exit")
	secret := flags.String("secret", "", "with -sign: the auth.play_secret or rtmp.publish_secret")
	ttl := flags.Duration("ttl", time.Hour, "with -sign: how long the token is valid")
	version := flags.Bool("version", false, "print the build (the commit and Go version) and exit")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		// flag stops at the first argument that is not one: the flags
		// after it would be ignored, and a config file named without
		// -config would leave flvgw on the default one.
		return fmt.Errorf("unexpected argument %q (the config file is given with -config)", flags.Arg(0))
	}
	if *version {
		_, err := fmt.Fprintln(stdout, gateway.Build())
		return err
	}
	if *sign != "" {
		return signQuery(stdout, *sign, *secret, *ttl)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stderr, "config %s: ok\n", *configPath)
		return nil
	}
	log := newLogger(cfg.Log, stderr)
	applyRuntime(cfg.Runtime, os.LookupEnv, log)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return serve(cfg, *configPath, sigs, log)
}

// signQuery prints the signed query for key (app/stream, as the gateway
// and the origin check it) valid for ttl.
func signQuery(w io.Writer, key, secret string, ttl time.Duration) error {
	if secret == "" {
		return errors.New("-sign needs -secret")
	}
	// The URL's path (/live/test.flv) names the key live/test. A key
	// ending in .flv without the leading slash is most likely that path
	// mistyped, and its token would be refused for the URL the operator
	// has in mind: it is refused here (a stream whose name ends in .flv is
	// signed by its path, /live/test.flv.flv).
	name := key
	if path, ok := strings.CutPrefix(key, "/"); ok {
		trimmed, isPath := strings.CutSuffix(path, ".flv")
		if !isPath {
			return fmt.Errorf("-sign %q must be a stream key such as live/test, or a viewer's path such as /live/test.flv", key)
		}
		name = trimmed
	} else if strings.HasSuffix(key, ".flv") {
		return fmt.Errorf("-sign %q: a stream key has no .flv (live/test), a viewer's path starts with / (/live/test.flv)", key)
	}
	app, stream, _ := strings.Cut(name, "/")
	if _, err := pool.MakeKey(app, stream); err != nil {
		return fmt.Errorf("-sign %q must be a stream key such as live/test, or a viewer's path such as /live/test.flv: %w", key, err)
	}
	key = name
	if ttl <= 0 {
		return fmt.Errorf("-ttl must be more than 0, got %s", ttl)
	}
	_, err := fmt.Fprintln(w, access.Query(secret, key, time.Now().Add(ttl)))
	return err
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	lvl, _ := c.level() // validated
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listeners opens the HTTP listener and, if configured, the HTTPS one,
// whose certificate chain (DER) it returns.
func listeners(cfg gateway.Config, log *slog.Logger) ([]net.Listener, [][]byte, error) {
	tcp, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("http.listen: %w", err)
	}
	pp := httpProxyProtocol(cfg, log)
	ln := withProxyProtocol(retryAccept(tcp, log), pp)
	if cfg.TLSListen == "" {
		return []net.Listener{ln}, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		_ = ln.Close()
		return nil, nil, fmt.Errorf("http.tls_cert/tls_key: %w", err)
	}
	tln, err := net.Listen("tcp", cfg.TLSListen)
	if err != nil {
		_ = ln.Close()
		return nil, nil, fmt.Errorf("http.tls_listen: %w", err)
	}
	return []net.Listener{ln, tls.NewListener(withProxyProtocol(retryAccept(tln, log), pp), &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	})}, cert.Certificate, nil
}

// serve wires the pool, the embedded origin and the gateway, and runs them
// until a signal ends them. SIGINT or SIGTERM drains: not ready, no new
// viewers or publishes, current viewers play until they leave or
// http.drain_timeout passes (a second signal cuts it short); then viewers
// end cleanly, publishers are disconnected, and serve returns nil.
// SIGHUP reloads limits, auth, publish auth and upstreams from path.
func serve(cfg Config, path string, sigs <-chan os.Signal, log *slog.Logger) error {
	build := gateway.Build()
	log.Info("flvgw starting", "revision", build.Revision, "modified", build.Modified, "go", build.GoVersion, "config", path)
	resolver := origin.NewResolver(cfg.Upstreams, cfg.Edge, log.With("component", "pull"))
	for _, u := range cfg.Upstreams {
		log.Info("upstream", "name", u.Name, "url", u.URL, "apps", u.Apps)
	}
	p, err := pool.New(cfg.Pool, log.With("component", "pool"), resolver.Resolve)
	if err != nil {
		return err
	}
	httpLns, tlsChain, err := listeners(cfg.HTTP, log.With("component", "gateway"))
	if err != nil {
		return err
	}
	var rtmpLn net.Listener
	if cfg.RTMP.Listen != "" {
		tcp, err := net.Listen("tcp", cfg.RTMP.Listen)
		if err != nil {
			for _, ln := range httpLns {
				_ = ln.Close()
			}
			return fmt.Errorf("rtmp.listen: %w", err)
		}
		olog := log.With("component", "origin")
		rtmpLn = withProxyProtocol(retryAccept(tcp, olog), rtmpProxyProtocol(cfg.RTMP, olog))
		log.Info("rtmp listening", "addr", rtmpLn.Addr().String())
	}
	if len(httpLns) > 1 {
		log.Info("https listening", "addr", httpLns[1].Addr().String())
	}
	log.Info("http listening", "addr", httpLns[0].Addr().String())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { p.Run(ctx) })
	gw := gateway.NewServer(cfg.HTTP, gateway.Policy{Limits: cfg.Limits, Auth: cfg.Auth}, p, log.With("component", "gateway"))
	gw.ReportUpstreams(resolver.Attempts)
	wg.Go(func() {
		if err := gw.Serve(ctx, httpLns...); err != nil {
			errs <- err
			cancel()
		}
	})
	org := origin.NewServer(cfg.RTMP, p, log.With("component", "origin"))
	if rtmpLn != nil {
		gw.ReportNotifier("rtmp.on_publish_done", org.Notifier())
		gw.ReportRTMP(func() gateway.RTMPCounts {
			st := org.Stats()
			return gateway.RTMPCounts{Open: st.Connections, RefusedTotal: st.RefusedTotal, RefusedPerIP: st.RefusedPerIP}
		})
		wg.Go(func() {
			if err := org.Serve(ctx, rtmpLn); err != nil {
				errs <- err
				cancel()
			}
		})
	}

	var (
		drained  <-chan time.Time // polls the viewers while draining
		deadline time.Time        // end of the drain
		draining bool
	)
	for stop := false; !stop; {
		select {
		case <-ctx.Done():
			stop = true
		case <-drained:
			if gw.Viewers() == 0 || !time.Now().Before(deadline) {
				stop = true
			} else {
				drained = time.After(drainPoll)
			}
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				reload(path, cfg, tlsChain, gw, org, resolver, log)
			case draining || cfg.HTTP.DrainTimeout == 0:
				stop = true
			default:
				draining = true
				deadline = time.Now().Add(cfg.HTTP.DrainTimeout)
				log.Info("draining", "signal", sig.String(), "viewers", gw.Viewers(), "drain_timeout", cfg.HTTP.DrainTimeout)
				gw.Drain()
				org.Drain()
				drained = time.After(0)
			}
		}
	}
	cancel()
	log.Info("shutting down", "viewers", gw.Viewers())
	start := time.Now()
	shutDown := make(chan struct{})
	defer close(shutDown)
	go exitOnSignal(sigs, shutDown, log)
	wg.Wait()
	p.Close()
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// exitOnSignal ends the process at once on SIGINT or SIGTERM before done
// is closed: a shutdown waits up to its grace for unfinished requests, and
// an operator's second Ctrl-C must not be swallowed meanwhile.
func exitOnSignal(sigs <-chan os.Signal, done <-chan struct{}, log *slog.Logger) {
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Warn("exiting before the shutdown finished", "signal", sig.String())
				os.Exit(1)
			}
		}
	}
}

// drainPoll is how often a drain checks whether the viewers are gone.
const drainPoll = 100 * time.Millisecond

// reload applies what SIGHUP may change: limits, auth, publish auth and
// upstreams. The rest of the file (listeners, pool sizes, timeouts, log)
// needs a restart; a file that does not validate changes nothing.
// running is the configuration flvgw started with, and tlsChain the
// certificate chain its HTTPS listener serves: a reload that changes what
// needs a restart says so.
func reload(path string, running Config, tlsChain [][]byte, gw *gateway.Server, org *origin.Server, r *origin.Resolver, log *slog.Logger) {
	cfg, err := loadConfig(path)
	if err != nil {
		log.Error("reload refused", "error", err)
		return
	}
	gw.SetPolicy(gateway.Policy{Limits: cfg.Limits, Auth: cfg.Auth})
	org.SetConfig(cfg.RTMP)
	r.Update(cfg.Upstreams, cfg.Edge)
	log.Info("reloaded", "config", path, "upstreams", len(cfg.Upstreams))
	changed := needRestart(running, cfg)
	if tlsChanged(tlsChain, cfg.HTTP) {
		changed = append(changed, "the files of http.tls_cert, http.tls_key")
	}
	if len(changed) > 0 {
		log.Warn("reload: changes that need a restart were not applied", "changed", strings.Join(changed, ", "))
	}
}

// tlsChanged reports whether the certificate that next's files hold now
// is not the one the HTTPS listener serves (running): a renewed
// certificate written over the same files changes no key of the config,
// and without this a reload for it said nothing of the restart it needs.
func tlsChanged(running [][]byte, next gateway.Config) bool {
	if running == nil || next.TLSListen == "" {
		return false // no HTTPS listener, or none in next ([http] then differs)
	}
	cert, err := tls.LoadX509KeyPair(next.TLSCert, next.TLSKey)
	return err != nil || !slices.EqualFunc(cert.Certificate, running, bytes.Equal)
}

// needRestart lists the parts of next that differ from running and that a
// reload does not apply: [http], [pool], [log], [runtime], and the RTMP
// listener's own keys.
func needRestart(running, next Config) []string {
	var changed []string
	for _, part := range []struct {
		name      string
		was, will any
	}{
		{"[http]", running.HTTP, next.HTTP},
		{"rtmp.listen", running.RTMP.Listen, next.RTMP.Listen},
		{"rtmp.proxy_protocol", running.RTMP.ProxyProtocol, next.RTMP.ProxyProtocol},
		{"rtmp.proxy_protocol_from", running.RTMP.ProxyProtocolFrom, next.RTMP.ProxyProtocolFrom},
		{"[pool]", running.Pool, next.Pool},
		{"[log]", running.Log, next.Log},
		{"[runtime]", running.Runtime, next.Runtime},
	} {
		if !reflect.DeepEqual(part.was, part.will) {
			changed = append(changed, part.name)
		}
	}
	return changed
}
