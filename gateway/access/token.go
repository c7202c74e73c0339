// Package access decides whether a client may play or publish a stream:
// signed tokens (an HMAC-SHA256, under a shared secret, of the stream key
// and an expiry time) and HTTP callbacks to the operator's service. It
// knows nothing of HTTP serving or RTMP; the gateway (play) and the origin
// (publish) both use it.
//
// A token authorizes playing over HTTP (?expires=..&token=.. on the .flv
// URL) or publishing over RTMP (the same query on the stream name).
package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors a check reports; each ends in 403 for the client.
var (
	ErrMissing = errors.New("access: token missing")
	ErrExpired = errors.New("access: token expired")
	ErrInvalid = errors.New("access: token invalid")
)

// Token returns the hex token for key ("app/stream") valid until expires.
func Token(secret, key string, expires time.Time) string {
	return hex.EncodeToString(mac(secret, key, strconv.FormatInt(expires.Unix(), 10)))
}

// Query returns "expires=..&token=.." for key, valid until expires.
func Query(secret, key string, expires time.Time) string {
	return "expires=" + strconv.FormatInt(expires.Unix(), 10) + "&token=" + Token(secret, key, expires)
}

func mac(secret, key, expires string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(key))
	m.Write([]byte{'\n'})
	m.Write([]byte(expires))
	return m.Sum(nil)
}

// Check verifies token and expires (a Unix time in seconds) for key at
// now. The comparison takes constant time.
func Check(secret, key, expires, token string, now time.Time) error {
	if token == "" || expires == "" {
		return ErrMissing
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		// Not quoted: it is the client's text, of up to the request's
		// length, and the query is never logged.
		return fmt.Errorf("%w: expires is not a Unix time in seconds", ErrInvalid)
	}
	got, err := hex.DecodeString(token)
	if err != nil {
		return fmt.Errorf("%w: not hex", ErrInvalid)
	}
	if !hmac.Equal(got, mac(secret, key, expires)) {
		return ErrInvalid
	}
	if now.Unix() > exp {
		return ErrExpired
	}
	return nil
}
