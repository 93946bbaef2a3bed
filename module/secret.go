package module

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/apiusers/apiusers/authz"
)

// secretFileName is the file the file store keeps its generated signing
// key in, beside the database.
const secretFileName = "signing.key"

// loadSecret sets the secret of a file store configured without
// signing_key: the one kept beside the data, made on first use.
func (s *settings) loadSecret() error {
	if s.secret != nil {
		return nil
	}
	secret, err := loadOrMakeSecret(filepath.Join(s.dir, secretFileName))
	if err != nil {
		return err
	}
	s.secret = secret
	return nil
}

// loadOrMakeSecret reads the signing secret kept at path, or makes a random
// one there (32 random bytes, hex-encoded; the 64 characters are the
// secret, so they can be given as signing_key verbatim). The file is made
// with mode 0600 and never replaced.
func loadOrMakeSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < authz.MinSecretLen {
			return nil, fmt.Errorf("signing key file %s holds fewer than %d bytes", path, authz.MinSecretLen)
		}
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("making store directory: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("making signing key: %w", err)
	}
	secret := []byte(hex.EncodeToString(raw[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process made it first: use theirs.
		return loadOrMakeSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing signing key: %w", err)
	}
	_, err = f.Write(append(secret, '\n'))
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("writing signing key: %w", err)
	}
	return secret, nil
}
