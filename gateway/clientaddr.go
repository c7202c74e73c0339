package gateway

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// trustedProxies are the peers (http.trusted_proxies) whose
// X-Forwarded-For says who the client is: a load balancer or a CDN tier in
// front of flvgw, which would otherwise be every viewer's address, for
// max_viewers_per_ip, the logs and the callbacks alike.
type trustedProxies []netip.Prefix

// parseTrustedProxies reads http.trusted_proxies: addresses or CIDR
// prefixes.
func parseTrustedProxies(list []string) (trustedProxies, error) {
	var ps trustedProxies
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("http.trusted_proxies: %q is not an address or a CIDR prefix: %w", s, err)
			}
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("http.trusted_proxies: %q is not an address or a CIDR prefix: %w", s, err)
		}
		a = a.Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}

func (ps trustedProxies) trust(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr says who a request is from: remote for the logs and the
// callbacks (host:port of the connection, or the client's address when a
// trusted proxy named it), ip for max_viewers_per_ip, and via, the proxy's
// host:port when the client was named by one (empty otherwise).
//
// X-Forwarded-For is read from its right: each hop appends the address it
// got the request from, so the first address from the right that is not a
// trusted proxy is the client (as nginx's real_ip_recursive). Addresses to
// its left are the client's own claims and are ignored, so a client cannot
// choose the address it is limited by. A value that is not an address
// stops the walk at the last trusted hop.
func (ps trustedProxies) clientAddr(ctx *fasthttp.RequestCtx) (remote, ip, via string) {
	peer := ctx.RemoteAddr().String()
	peerIP, _ := netip.AddrFromSlice(ctx.RemoteIP())
	peerIP = peerIP.Unmap()
	if len(ps) == 0 || !ps.trust(peerIP) {
		return peer, peerIP.String(), ""
	}
	client := peerIP
	values := ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor)
walk:
	for i := len(values) - 1; i >= 0; i-- {
		hops := bytes.Split(values[i], []byte(","))
		for j := len(hops) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(string(bytes.TrimSpace(hops[j])))
			if err != nil {
				break walk
			}
			client = a.Unmap()
			if !ps.trust(client) {
				break walk
			}
		}
	}
	if client == peerIP {
		return peer, peerIP.String(), ""
	}
	return client.String(), client.String(), peer
}
