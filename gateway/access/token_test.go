package access

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Minute)
	good := Token("s3cret", "live/a", exp)
	expStr := "1800000060"
	for _, tc := range []struct {
		name                      string
		secret, key, expires, tok string
		want                      error
	}{
		{"right", "s3cret", "live/a", expStr, good, nil},
		{"missing token", "s3cret", "live/a", expStr, "", ErrMissing},
		{"missing expiry", "s3cret", "live/a", "", good, ErrMissing},
		{"other key", "s3cret", "live/b", expStr, good, ErrInvalid},
		{"other secret", "other", "live/a", expStr, good, ErrInvalid},
		{"expiry moved", "s3cret", "live/a", "1800009999", good, ErrInvalid},
		{"not hex", "s3cret", "live/a", expStr, "zz", ErrInvalid},
		{"bad expiry", "s3cret", "live/a", "soon", good, ErrInvalid},
	} {
		if err := Check(tc.secret, tc.key, tc.expires, tc.tok, now); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := Check("s3cret", "live/a", expStr, good, exp.Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	// The client's expires is not quoted: the refusal is logged, and the
	// query never is.
	junk := strings.Repeat("<junk>", 1000)
	if err := Check("s3cret", "live/a", junk, good, now); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "junk") {
		t.Errorf("bad expiry: %v, want ErrInvalid without the value", err)
	}
}
