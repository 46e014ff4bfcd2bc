package crypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"filippo.io/age"
)

// CaseKey is a case's unwrapped hybrid identity. Like Master it prints only a
// fingerprint. It is safe for concurrent use.
type CaseKey struct {
	id     *age.HybridIdentity
	rcpt   *age.HybridRecipient
	fp     string
	fields fieldKeys
}

func newCaseKey(id *age.HybridIdentity) (*CaseKey, error) {
	r := id.Recipient()
	fk, err := deriveFieldKeys(id.String())
	if err != nil {
		return nil, err
	}
	return &CaseKey{id: id, rcpt: r, fp: fingerprint(r), fields: fk}, nil
}

// Fingerprint names the case key's public half (16 hex digits).
func (k CaseKey) Fingerprint() string { return k.fp }

func (k CaseKey) String() string { return "crypt.CaseKey{fingerprint:" + k.fp + "}" }

// GoString keeps %#v from dumping the identity's fields.
func (k CaseKey) GoString() string { return k.String() }

// Format redacts every verb.
func (k CaseKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue makes slog show only the fingerprint.
func (k CaseKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("fingerprint", k.fp))
}

const (
	nonceSize = 16       // age's payload nonce, the first bytes of the payload
	chunkSize = 64 << 10 // age STREAM plaintext chunk
	tagSize   = 16       // ChaCha20-Poly1305 tag per chunk
	encChunk  = chunkSize + tagSize
	// maxHeaderSize bounds a detached header; one hybrid stanza makes ~1.6 KB.
	maxHeaderSize = 16 << 10
)

// PayloadSize is the exact size of the payload (nonce and STREAM chunks) that
// Encrypt produces for plaintextSize bytes, so a blob store can be told the
// size up front. It returns -1 for a negative or absurdly large size.
func PayloadSize(plaintextSize int64) int64 {
	if plaintextSize < 0 || plaintextSize > 1<<62 {
		return -1
	}
	chunks := (plaintextSize + chunkSize - 1) / chunkSize
	if chunks == 0 {
		chunks = 1 // empty plaintext is one empty, final chunk
	}
	return nonceSize + plaintextSize + chunks*tagSize
}

// PlaintextSize inverts PayloadSize; a payload size no plaintext produces is
// ErrCorrupt (truncated or padded blob).
func PlaintextSize(payloadSize int64) (int64, error) {
	enc := payloadSize - nonceSize
	if payloadSize < nonceSize+tagSize || enc > 1<<62 {
		return 0, fmt.Errorf("%w: impossible payload size %d", ErrCorrupt, payloadSize)
	}
	chunks := (enc + encChunk - 1) / encChunk
	pt := enc - chunks*tagSize
	if PayloadSize(pt) != payloadSize {
		return 0, fmt.Errorf("%w: impossible payload size %d", ErrCorrupt, payloadSize)
	}
	return pt, nil
}

// splitWriter keeps what age writes before the payload (the header) and
// forwards everything after to the payload writer.
type splitWriter struct {
	head bytes.Buffer
	dst  io.Writer
}

func (s *splitWriter) Write(p []byte) (int, error) {
	if s.dst != nil {
		return s.dst.Write(p)
	}
	if s.head.Len()+len(p) > maxHeaderSize+nonceSize {
		return 0, errors.New("age header larger than expected")
	}
	return s.head.Write(p)
}

// startAge begins an age file to k on sw and returns age's STREAM writer,
// the detached header and the payload nonce.
func (k *CaseKey) startAge(sw *splitWriter) (io.WriteCloser, []byte, []byte, error) {
	// age.Encrypt writes the header and then the nonce before returning; the
	// STREAM writer writes nothing until its first chunk is full.
	w, err := age.Encrypt(sw, k.rcpt)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("crypt: start encryption: %w", err)
	}
	raw := sw.head.Bytes()
	hdr, err := age.ExtractHeader(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("crypt: split header: %w", err)
	}
	// ExtractHeader re-marshals; it must be byte-identical to what was
	// written, and exactly the nonce must follow, or PayloadSize would lie.
	if !bytes.HasPrefix(raw, hdr) || len(raw)-len(hdr) != nonceSize {
		return nil, nil, nil, errors.New("crypt: split header: unexpected age file layout")
	}
	return w, bytes.Clone(hdr), bytes.Clone(raw[len(hdr):]), nil
}

// fileKey unwraps a header's file key; wrong key and tampering are told apart
// as far as age can.
func (k *CaseKey) fileKey(header []byte) ([]byte, error) {
	if len(header) > maxHeaderSize {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrCorrupt, len(header))
	}
	fk, err := age.DecryptHeader(header, k.id)
	if err != nil {
		return nil, classifyHeaderErr("open header", err)
	}
	return fk, nil
}

// sourceError marks an error of the caller's payload reader, so it is passed
// through as an I/O error and not reported as ErrCorrupt.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// classifyReadErr: io.EOF passes as is (callers compare with ==), the
// source's own errors stay I/O errors, anything age says is ErrCorrupt.
func classifyReadErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var se *sourceError
	if errors.As(err, &se) {
		return fmt.Errorf("crypt: read payload: %w", se.err)
	}
	return fmt.Errorf("%w: payload: %v", ErrCorrupt, err)
}

type plainReader struct {
	r   io.Reader
	buf []byte // plaintext read ahead while authenticating the first chunk
}

func (p *plainReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	n, err := p.r.Read(b)
	return n, classifyReadErr(err)
}

// OpenStream authenticates header with k and returns the plaintext of payload
// as a sequential stream. The first chunk is authenticated before OpenStream
// returns, so a wrong or swapped header fails here, before any byte is served;
// later tampering surfaces as ErrCorrupt from Read.
func (k *CaseKey) OpenStream(header []byte, payload io.Reader) (io.Reader, error) {
	fk, err := k.fileKey(header)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(io.MultiReader(bytes.NewReader(header), sourceReader{payload}),
		age.NewInjectedFileKeyIdentity(fk))
	if err != nil {
		return nil, classifyReadErr(err)
	}
	var first [1]byte
	n, err := r.Read(first[:])
	if err != nil && err != io.EOF {
		return nil, classifyReadErr(err)
	}
	if err == io.EOF {
		return bytes.NewReader(nil), nil
	}
	return &plainReader{r: r, buf: first[:n]}, nil
}

// RewrapHeader re-encrypts a material's header from k to the case key to,
// keeping its file key: case key rotation rewrites header rows only, never
// blobs. Deleting the old case key afterwards shreds nothing that was
// rewrapped.
func (k *CaseKey) RewrapHeader(header []byte, to *CaseKey) ([]byte, error) {
	if to == nil {
		return nil, errors.New("crypt: rewrap header: no target case key")
	}
	fk, err := k.fileKey(header)
	if err != nil {
		return nil, fmt.Errorf("crypt: rewrap header: %w", err)
	}
	defer clear(fk)
	stanzas, err := to.rcpt.Wrap(fk)
	if err != nil {
		return nil, fmt.Errorf("crypt: rewrap header: %w", err)
	}
	h, err := marshalHeader(fk, stanzas)
	if err != nil {
		return nil, fmt.Errorf("crypt: rewrap header: %w", err)
	}
	// age's parser is the judge of the format written by hand here.
	if got, err := age.DecryptHeader(h, to.id); err != nil || !bytes.Equal(got, fk) {
		return nil, errors.New("crypt: rewrap header: new header does not verify")
	}
	return h, nil
}

var b64 = base64.RawStdEncoding

// marshalHeader writes an age v1 header (age-encryption.org/v1 spec): the
// stanzas, then an HMAC-SHA256 under HKDF(file key, "header") over all that
// precedes the MAC. age keeps header construction internal, hence this copy.
func marshalHeader(fileKey []byte, stanzas []*age.Stanza) ([]byte, error) {
	if len(stanzas) == 0 {
		return nil, errors.New("no recipient stanzas")
	}
	var b bytes.Buffer
	b.WriteString("age-encryption.org/v1\n")
	for _, s := range stanzas {
		b.WriteString("-> " + s.Type)
		for _, a := range s.Args {
			b.WriteString(" " + a)
		}
		b.WriteString("\n")
		body := b64.EncodeToString(s.Body)
		for len(body) >= 64 {
			b.WriteString(body[:64] + "\n")
			body = body[64:]
		}
		// The last line is always shorter than 64 columns, possibly empty.
		b.WriteString(body + "\n")
	}
	b.WriteString("---")
	key, err := hkdf.Key(sha256.New, fileKey, nil, "header", 32)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b.Bytes())
	b.WriteString(" " + b64.EncodeToString(mac.Sum(nil)) + "\n")
	return b.Bytes(), nil
}
