package crypt

import (
	"errors"
	"fmt"
	"io"
)

// The vault seals through SealReader; age's own STREAM writer, behind
// Encrypt, stays here as the tests' second, independent encoder of the
// format.

// Sealer encrypts a stream of plaintext to a case key. Memory is bounded by
// one age chunk (64 KiB) whatever the size of the document.
type Sealer struct {
	w      io.WriteCloser
	header []byte
	n      int64
	done   bool
}

// Encrypt starts a new material encrypted to k. Plaintext written to the
// Sealer leaves as payload (nonce and STREAM chunks) to payload; the header,
// which wraps this material's own file key to k, is kept apart and available
// from Header once Close has succeeded.
func (k *CaseKey) Encrypt(payload io.Writer) (*Sealer, error) {
	sw := &splitWriter{}
	w, hdr, nonce, err := k.startAge(sw)
	if err != nil {
		return nil, err
	}
	sw.dst = payload
	if _, err := payload.Write(nonce); err != nil {
		return nil, fmt.Errorf("crypt: write payload nonce: %w", err)
	}
	return &Sealer{w: w, header: hdr}, nil
}

// Write encrypts p. Errors from the payload writer are returned wrapped.
func (s *Sealer) Write(p []byte) (int, error) {
	if s.done {
		return 0, errors.New("crypt: write after close")
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("crypt: write payload: %w", err)
	}
	return n, nil
}

// Close encrypts and writes the final chunk. Until it succeeds the payload is
// incomplete and must not be stored.
func (s *Sealer) Close() error {
	if s.done {
		return nil
	}
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("crypt: finish payload: %w", err)
	}
	s.done = true
	return nil
}

// Header returns the detached age header to store beside the material, or
// nil before Close has succeeded.
func (s *Sealer) Header() []byte {
	if !s.done {
		return nil
	}
	return s.header
}

// Size returns the plaintext bytes accepted so far.
func (s *Sealer) Size() int64 { return s.n }
