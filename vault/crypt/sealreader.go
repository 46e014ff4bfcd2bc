package crypt

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors of a SealReader's source that disagrees with its declared size, or
// runs past the limit.
var (
	ErrBodyShort = errors.New("crypt: the plaintext ended before its declared size")
	ErrBodyLong  = errors.New("crypt: the plaintext is longer than its declared size or the limit")
)

// SealReader encrypts a plaintext to a case key as an io.Reader of its
// payload (nonce, then STREAM chunks): each whole chunk is read from the
// source into the caller's buffer and sealed there. A blob store that fills
// its part buffers from it gets ciphertext with no copy in between, where
// age's own writer copies every byte into its chunk buffer and its caller
// copies it again out of a pipe. The format is age's, as age writes it: the
// header comes from age itself, and TestSealReaderMatchesAge and
// TestSealReaderUnknownSize read every size back through age.
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
	known   bool   // the size is declared; else the source's end is the end
	left    int64  // plaintext still to read (declared) or allowed (up to the limit)
	read    int64  // plaintext read
	carry   []byte // a byte read past a full chunk to learn it was not the final one
	chunk   uint64 // index of the next chunk
	pending []byte // ciphertext sealed but not yet read
	scratch []byte // a chunk that did not fit the caller's buffer
	err     error  // io.EOF after the final chunk, or the failure
	srcErr  error
}

// SealReader starts a material read from src, encrypted to k: exactly size
// bytes of plaintext, or, with size -1, whatever src holds up to limit bytes
// (more is ErrBodyLong). Each chunk of plaintext is written to tee (a hash),
// if not nil, before it is sealed.
func (k *CaseKey) SealReader(src io.Reader, size, limit int64, tee io.Writer) (*SealReader, error) {
	known, left := size >= 0, size
	if !known {
		left = limit
	}
	if left < 0 {
		return nil, fmt.Errorf("crypt: seal reader: size %d, limit %d", size, limit)
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
	aead, err := payloadAEAD(fk, nonce)
	clear(fk)
	if err != nil {
		return nil, err
	}
	return &SealReader{aead: aead, src: src, tee: tee, header: hdr, known: known, left: left, pending: nonce, carry: make([]byte, 0, 1)}, nil
}

// Header is the detached age header to store beside the payload. It is
// known from the start; the payload is whole only once Read returned io.EOF.
func (s *SealReader) Header() []byte { return s.header }

// SourceErr is the source's failure, ErrBodyShort or ErrBodyLong, if the
// payload ended because of the source.
func (s *SealReader) SourceErr() error { return s.srcErr }

// Size is the plaintext read so far: all of it once Read returned io.EOF.
func (s *SealReader) Size() int64 { return s.read }

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
		pt := chunkSize
		if s.known {
			pt = int(min(chunkSize, s.left))
		}
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
// must have room for the tag. With an unknown size, buf is a whole chunk's
// room and the chunk may come out shorter: the final one.
func (s *SealReader) seal(buf []byte) ([]byte, error) {
	var final bool
	if s.known {
		if _, err := io.ReadFull(s.src, buf); err != nil {
			clear(buf)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = ErrBodyShort
			}
			return nil, s.fail(err)
		}
		s.left -= int64(len(buf))
		final = s.left == 0
		if final {
			// The declared size is all there may be.
			if err := s.expectEOF(); err != nil {
				clear(buf)
				return nil, s.fail(err)
			}
		}
	} else {
		c := copy(buf, s.carry)
		s.carry = s.carry[:0]
		n, err := io.ReadFull(s.src, buf[c:])
		buf = buf[:c+n]
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			final = true
		case err != nil:
			clear(buf)
			return nil, s.fail(err)
		default:
			// A full chunk: the final one only if nothing follows.
			var one [1]byte
			m, err := io.ReadFull(s.src, one[:])
			if err != nil && err != io.EOF {
				clear(buf)
				return nil, s.fail(err)
			}
			final = m == 0
			s.carry = append(s.carry, one[:m]...)
		}
		if int64(len(buf)) > s.left || (!final && int64(len(buf)) == s.left) {
			clear(buf)
			clear(s.carry[:cap(s.carry)])
			return nil, s.fail(ErrBodyLong)
		}
		s.left -= int64(len(buf))
	}
	s.read += int64(len(buf))
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

// expectEOF reads one byte past the declared size: there must be none.
func (s *SealReader) expectEOF() error {
	var one [1]byte
	m, err := io.ReadFull(s.src, one[:])
	if m > 0 {
		return ErrBodyLong
	}
	if err != io.EOF {
		return err
	}
	return nil
}

func (s *SealReader) fail(err error) error {
	s.srcErr = err
	s.err = fmt.Errorf("crypt: read plaintext: %w", err)
	return s.err
}
