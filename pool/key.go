package pool

import (
	"errors"
	"fmt"
)

// MaxNameLength bounds each of a key's two parts.
const MaxNameLength = 128

// ErrBadKey reports an app or stream name outside the key grammar.
var ErrBadKey = errors.New("pool: invalid stream key")

// MakeKey joins an app and a stream name into a key, "app/stream". Each
// part is 1..MaxNameLength characters of [A-Za-z0-9_.-] and not "." or
// "..": nothing that could change meaning in a path or an upstream URL.
func MakeKey(app, stream string) (string, error) {
	if err := checkName(app); err != nil {
		return "", fmt.Errorf("%w: app: %w", ErrBadKey, err)
	}
	if err := checkName(stream); err != nil {
		return "", fmt.Errorf("%w: stream: %w", ErrBadKey, err)
	}
	return app + "/" + stream, nil
}

func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxNameLength {
		return fmt.Errorf("%d characters, at most %d", len(s), MaxNameLength)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%q is reserved", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return fmt.Errorf("character %q at %d", c, i)
		}
	}
	return nil
}
