package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// ErrDenied: the callback answered with a status other than 2xx.
var ErrDenied = errors.New("access: denied by callback")

// Callback asks an operator's HTTP service whether a client may play or
// publish: a POST of a JSON Request; any 2xx allows, anything else, an
// error or the timeout denies. A redirect is not followed: it denies, as
// the service's own answer is not a 2xx (a redirect to a login page, or
// from http to https, would otherwise allow whatever its target answers).
type Callback struct {
	URL     string
	Timeout time.Duration
	Client  *http.Client // nil: http.DefaultClient's transport
}

// Request is the JSON body of a callback.
type Request struct {
	Action string `json:"action"` // "play" or "publish"
	App    string `json:"app"`
	Stream string `json:"stream"`
	Client string `json:"client"` // remote address
	// Query is the request's query, without the "?": a viewer's URL's,
	// or what follows the stream name in a publish (an encoder's stream
	// key, ?key=...). Left out when empty.
	Query string `json:"query,omitempty"`
}

// Ask calls the callback; nil means allowed.
func (c Callback) Ask(ctx context.Context, r Request) error {
	return c.post(ctx, r)
}

// post POSTs body as JSON to the callback and reads its answer: nil for a
// 2xx, an error wrapping ErrDenied for another status.
func (c Callback) post(ctx context.Context, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("access: callback: %w", withoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	var client http.Client
	if c.Client != nil {
		client = *c.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("access: callback: %w", withoutURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: %s", ErrDenied, resp.Status)
	}
	return nil
}

// withoutURL is err without the URL that net/url's and net/http's errors
// quote: a refused play or publish logs its error, and the callback's URL
// may carry its credentials (net/http masks only the password, not a
// key in the query). The cause stays, for errors.Is.
func withoutURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s: %w", uerr.Op, uerr.Err)
	}
	return err
}

// ValidateConfig checks a callback URL ("" for none) and timeout, naming
// the config keys (section.url_key, section.callback_timeout) in errors.
// The URL is parsed as a request to it would be: one that Ask could not
// send (an unparsable one, or one without a host) would refuse every
// viewer or publisher with 403, and a reload would apply it. The errors
// do not quote the URL, whose user info or query may be the callback's
// credentials.
func ValidateConfig(section, urlKey, rawURL string, timeout time.Duration) error {
	if rawURL != "" {
		u, err := url.Parse(rawURL)
		switch err = withoutURL(err); {
		case err != nil:
			return fmt.Errorf("%s.%s is not a URL: %w", section, urlKey, err)
		case u.Scheme != "http" && u.Scheme != "https":
			return fmt.Errorf("%s.%s must be an http(s) URL", section, urlKey)
		case u.Host == "":
			return fmt.Errorf("%s.%s has no host", section, urlKey)
		}
	}
	if timeout < time.Millisecond {
		return fmt.Errorf("%s.callback_timeout must be a duration such as \"2s\", got %s", section, timeout)
	}
	return nil
}
