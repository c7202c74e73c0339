package gateway

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// AddrList is a list of addresses and CIDR prefixes from the config, such
// as http.trusted_proxies or the balancers allowed to send the PROXY
// protocol.
type AddrList []netip.Prefix

// ParseAddrList reads the config key key: addresses or CIDR prefixes.
func ParseAddrList(key string, list []string) (AddrList, error) {
	var ps AddrList
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not an address or a CIDR prefix: %w", key, s, err)
			}
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				// An IPv4-mapped prefix: the IPv4 prefix it maps, as
				// Contains looks at a mapped address's IPv4 form.
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an address or a CIDR prefix: %w", key, s, err)
		}
		a = a.Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}

// Contains reports whether a is in the list (an IPv4-mapped IPv6 address
// as its IPv4 address, a zoned one as the address without its zone).
func (ps AddrList) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// CheckProxyProtocolFrom checks section.proxy_protocol_from (http or
// rtmp): a list of addresses, and only with section.proxy_protocol on,
// where it does something.
func CheckProxyProtocolFrom(section string, on bool, from []string) error {
	key := section + ".proxy_protocol_from"
	if _, err := ParseAddrList(key, from); err != nil {
		return err
	}
	if len(from) > 0 && !on {
		return fmt.Errorf("%s is set, but %s.proxy_protocol is off", key, section)
	}
	return nil
}

// trustedProxies are the peers (http.trusted_proxies) whose
// X-Forwarded-For says who the client is: a load balancer or a CDN tier in
// front of flvgw, which would otherwise be every viewer's address, for
// max_viewers_per_ip, the logs and the callbacks alike.
type trustedProxies = AddrList

// parseTrustedProxies reads http.trusted_proxies.
func parseTrustedProxies(list []string) (trustedProxies, error) {
	return ParseAddrList("http.trusted_proxies", list)
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
	if len(ps) == 0 || !ps.Contains(peerIP) {
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
			if !ps.Contains(client) {
				break walk
			}
		}
	}
	if client == peerIP {
		return peer, peerIP.String(), ""
	}
	return client.String(), client.String(), peer
}

// limitKey is what max_viewers_per_ip counts ip as: the address itself for
// IPv4, its first ipv6Prefix bits for IPv6 (an IPv6 subscriber usually
// holds a whole /64). An ip that is not an address counts as itself.
func limitKey(ip string, ipv6Prefix int) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() || ipv6Prefix <= 0 || ipv6Prefix >= 128 {
		return ip
	}
	p, err := a.Prefix(ipv6Prefix)
	if err != nil {
		return ip
	}
	return p.String()
}
