package access

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A callback that fails is logged with the refusal it causes; its error
// names neither the query nor the user info of the callback's URL, which
// may be the credentials the operator's service takes.
func TestCallbackErrorDoesNotQuoteItsURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port that refuses
	cb := Callback{URL: "http://hookuser:hookpass@" + addr + "/hook?key=s3cretkey", Timeout: 5 * time.Second}
	err = cb.Ask(context.Background(), Request{Action: "play", App: "live", Stream: "a"})
	if err == nil {
		t.Fatal("a callback to a closed port allowed")
	}
	for _, secret := range []string{"s3cretkey", "hookuser", "hookpass"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error quotes %q: %v", secret, err)
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%v: the cause is lost", err)
	}
}

// ValidateConfig refuses a callback URL that Ask could not send (every
// viewer or publisher would get 403), without quoting the URL.
func TestValidateConfigRefusesUnsendableURLs(t *testing.T) {
	for _, u := range []string{
		"http://hookuser:hookpass%zz@127.0.0.1/hook",
		"http://",
		"https:///hook?key=hookpass",
		"ftp://hookuser:hookpass@127.0.0.1/",
		"http://127.0.0.1:80 /hook?key=hookpass",
	} {
		err := ValidateConfig("auth", "on_play", u, time.Second)
		if err == nil || !strings.Contains(err.Error(), "auth.on_play") {
			t.Errorf("%q: %v, want an error naming auth.on_play", u, err)
			continue
		}
		if strings.Contains(err.Error(), "hookpass") || strings.Contains(err.Error(), "hookuser") {
			t.Errorf("%q: the error quotes the URL's credentials: %v", u, err)
		}
	}
	for _, u := range []string{"", "http://127.0.0.1:8000/hook", "https://hooks.example/on_play?key=k"} {
		if err := ValidateConfig("auth", "on_play", u, time.Second); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
}
