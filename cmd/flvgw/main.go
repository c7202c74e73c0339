// Command flvgw is an HTTP-FLV relay gateway: it takes RTMP publishes on
// its embedded origin and plays every stream to any number of HTTP-FLV
// viewers from one shared relay entry.
//
//	flvgw -config etc/gw.toml      serve
//	flvgw -check -config F         validate F and exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"flvgw/gateway"
	"flvgw/origin"
	"flvgw/pool"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "flvgw:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	flags := flag.NewFlagSet("flvgw", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "etc/gw.toml", "configuration file (TOML)")
	check := flags.Bool("check", false, "validate the configuration and exit")
	if err := flags.Parse(args); err != nil {
		return err
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log)
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	lvl, _ := c.level() // validated
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve wires the pool, the embedded origin and the gateway, and runs them
// until ctx is done. Shutdown ends viewers cleanly first, then publishers,
// then the pool.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	var resolver pool.Resolver
	if len(cfg.Upstreams) > 0 {
		resolver = origin.NewResolver(cfg.Upstreams, cfg.Edge, log.With("component", "pull"))
		for _, u := range cfg.Upstreams {
			log.Info("upstream", "name", u.Name, "url", u.URL, "apps", u.Apps)
		}
	}
	p, err := pool.New(cfg.Pool, log.With("component", "pool"), resolver)
	if err != nil {
		return err
	}
	httpLn, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	var rtmpLn net.Listener
	if cfg.RTMP.Listen != "" {
		if rtmpLn, err = net.Listen("tcp", cfg.RTMP.Listen); err != nil {
			_ = httpLn.Close()
			return fmt.Errorf("rtmp.listen: %w", err)
		}
		log.Info("rtmp listening", "addr", rtmpLn.Addr().String())
	}
	log.Info("http listening", "addr", httpLn.Addr().String())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { p.Run(ctx) })
	gw := gateway.NewServer(cfg.HTTP, p, log.With("component", "gateway"))
	wg.Go(func() {
		if err := gw.Serve(ctx, httpLn); err != nil {
			errs <- err
			cancel()
		}
	})
	if rtmpLn != nil {
		org := origin.NewServer(cfg.RTMP, p, log.With("component", "origin"))
		wg.Go(func() {
			if err := org.Serve(ctx, rtmpLn); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	<-ctx.Done()
	log.Info("shutting down")
	start := time.Now()
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
