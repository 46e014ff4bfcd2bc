package crypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors of a SealReader's source that disagrees with its declared size.
var (
	ErrBodyShort = errors.New("crypt: the plaintext ended before its declared size")
	ErrBodyLong  = errors.New("crypt: the plaintext is longer than its declared size")
)

// SealReader encrypts a plaintext of known size to a case key as an
// io.Reader of its payload (nonce, then STREAM chunks): each whole chunk is
// read from the source into the caller's buffer and sealed there. A blob
// store that fills its part buffers from it gets ciphertext with no copy in
// between, where [CaseKey.Encrypt] copies every byte into age's chunk
// buffer and the caller copies it again out of a pipe. The format is age's,
// as age writes it: the header comes from age itself, and
// TestSealReaderMatchesAge reads every size back through age.
//
// Read returns only ciphertext in the bytes it counts. A source that fails,
// or whose length is not the declared size, fails the Read with a non-EOF
// error (SourceErr tells it from a failure of the caller), so a reader that
// stops at io.EOF never takes a short payload for a whole one.
type SealReader struct {
	aead    cipher.AEAD
	src     io.Reader
	tee     io.Writer
	header  []byte
	left    int64  // plaintext still to read
	chunk   uint64 // index of the next chunk
	pending []byte // ciphertext sealed but not yet read
	scratch []byte // a chunk that did not fit the caller's buffer
	err     error  // io.EOF after the final chunk, or the failure
	srcErr  error
}

// SealReader starts a material of size bytes of plaintext read from src,
// encrypted to k. Each chunk of plaintext is written to tee (a hash), if
// not nil, before it is sealed.
func (k *CaseKey) SealReader(src io.Reader, size int64, tee io.Writer) (*SealReader, error) {
	if size < 0 {
		return nil, fmt.Errorf("crypt: seal reader: size %d", size)
	}
	_, hdr, nonce, err := k.startAge(&splitWriter{})
	if err != nil {
		return nil, err
	}
	// age keeps the file key to itself; the header gives it back.
	fk, err := k.fileKey(hdr)
	if err != nil {
		return nil, fmt.Errorf("crypt: seal reader: %w", err)
	}
	key, err := hkdf.Key(sha256.New, fk, nonce, "payload", chacha20poly1305.KeySize)
	clear(fk)
	if err != nil {
		return nil, fmt.Errorf("crypt: payload key: %w", err)
	}
	aead, err := chacha20poly1305.New(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: payload key: %w", err)
	}
	return &SealReader{aead: aead, src: src, tee: tee, header: hdr, left: size, pending: nonce}, nil
}

// Header is the detached age header to store beside the payload. It is
// known from the start; the payload is whole only once Read returned io.EOF.
func (s *SealReader) Header() []byte { return s.header }

// SourceErr is the source's failure, ErrBodyShort or ErrBodyLong, if the
// payload ended because of the source.
func (s *SealReader) SourceErr() error { return s.srcErr }

func (s *SealReader) Read(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if len(s.pending) > 0 {
			c := copy(p, s.pending)
			s.pending, p, n = s.pending[c:], p[c:], n+c
			continue
		}
		if s.err != nil {
			break
		}
		pt := int(min(chunkSize, s.left))
		if len(p) >= pt+tagSize {
			ct, err := s.seal(p[:pt])
			if err != nil {
				break
			}
			p, n = p[len(ct):], n+len(ct)
			continue
		}
		if s.scratch == nil {
			s.scratch = make([]byte, encChunk)
		}
		if ct, err := s.seal(s.scratch[:pt]); err == nil {
			s.pending = ct
		}
	}
	if n > 0 {
		return n, nil
	}
	return 0, s.err
}

// seal reads the next chunk's plaintext into buf and seals it in place; buf
// must have room for the tag.
func (s *SealReader) seal(buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(s.src, buf); err != nil {
		clear(buf)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = ErrBodyShort
		}
		return nil, s.fail(err)
	}
	s.left -= int64(len(buf))
	final := s.left == 0
	if final {
		// The declared size is all there may be.
		var one [1]byte
		if m, err := io.ReadFull(s.src, one[:]); m > 0 {
			clear(buf)
			return nil, s.fail(ErrBodyLong)
		} else if err != io.EOF {
			clear(buf)
			return nil, s.fail(err)
		}
	}
	if s.tee != nil {
		if _, err := s.tee.Write(buf); err != nil {
			clear(buf)
			return nil, s.fail(err)
		}
	}
	var nonce [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[3:11], s.chunk)
	if final {
		nonce[len(nonce)-1] = 1
	}
	ct := s.aead.Seal(buf[:0], nonce[:], buf, nil)
	s.chunk++
	if final {
		s.err = io.EOF
	}
	return ct, nil
}

func (s *SealReader) fail(err error) error {
	s.srcErr = err
	s.err = fmt.Errorf("crypt: read plaintext: %w", err)
	return s.err
}
