package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/crvault/crvault/vault"
)

// progressMode reads --progress.
func progressFlag(fs *flag.FlagSet) *string {
	return fs.String("progress", "auto", "progress bar with rate and time left on standard error: auto (when it is a terminal), always, never")
}

// newBar is a byte progress bar on standard error, or nil when there is
// to be none (not a terminal, or --progress never).
func newBar(e *env, mode string, size int64, desc string) (*progressbar.ProgressBar, error) {
	switch mode {
	case "never":
		return nil, nil
	case "auto":
		if !e.isTerminal(e.stderr) {
			return nil, nil
		}
	case "always":
	default:
		return nil, usagef("--progress must be auto, always or never")
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.stderr) }),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetRenderBlankState(true),
	), nil
}

// retryPolicy spaces out attempts after failures that made no progress.
type retryPolicy struct {
	max    int
	failed int
	e      *env
	what   string
}

// wait sleeps before the next attempt, or says there is none left.
func (r *retryPolicy) wait(ctx context.Context, cause error, hint time.Duration) error {
	r.failed++
	if r.failed > r.max {
		return cause
	}
	d := time.Duration(1<<min(r.failed-1, 5)) * time.Second
	if hint > d {
		d = hint
	}
	fmt.Fprintf(r.e.stderr, "vaultctl: %s: %s; retrying in %s (%d/%d)\n", r.what, oneLine(cause.Error()), d, r.failed, r.max)
	select {
	case <-ctx.Done():
		return cause
	case <-time.After(d):
		return nil
	}
}

// progress notes progress: the failures before it no longer count.
func (r *retryPolicy) progress() { r.failed = 0 }

// retryable says whether a failure may pass: the network, or a server
// that says it is unavailable now.
func retryable(err error) (bool, time.Duration) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusRequestTimeout, ae.retry
	}
	var ue usageError
	var le localError
	var ve verifyError
	if errors.As(err, &ue) || errors.As(err, &le) || errors.As(err, &ve) || errors.Is(err, context.Canceled) {
		return false, 0
	}
	return true, 0
}

// source is what an upload reads: a file it can read again from any
// offset, or a stream (standard input) of which it keeps the current chunk
// in memory, to send it again after a network error.
type source struct {
	name string
	f    *os.File
	size int64 // -1: not known until the stream ends

	in    io.Reader
	chunk int64
	buf   []byte
	bufAt int64
	eof   bool

	// The SHA-256 of the document, fed every byte once and in order,
	// whatever is sent twice.
	h      hash.Hash
	hashed int64
}

func openSource(e *env, path string, chunk int64) (*source, error) {
	s := &source{name: path, h: sha256.New(), size: -1, chunk: chunk}
	if path == "-" {
		s.in = e.stdin
		return s, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, localError{err}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, localError{err}
	}
	if !st.Mode().IsRegular() {
		// A pipe or device: read it as a stream.
		s.in = f
		return s, nil
	}
	s.f, s.size = f, st.Size()
	return s, nil
}

func (s *source) Close() {
	if s.f != nil {
		s.f.Close()
	}
}

// hashTo feeds the hash the bytes [at, at+len(p)) it has not seen.
func (s *source) hashTo(at int64, p []byte) {
	if end := at + int64(len(p)); end > s.hashed && at <= s.hashed {
		s.h.Write(p[s.hashed-at:])
		s.hashed = end
	}
}

// skipTo brings the hash (and a stream's position) to offset: what an
// earlier run already sent, when resuming.
func (s *source) skipTo(offset int64) error {
	if s.f != nil {
		if offset > s.size {
			return verifyError{fmt.Sprintf("the server holds %d bytes, but %s has only %d", offset, s.name, s.size)}
		}
		if _, err := io.Copy(s.h, io.NewSectionReader(s.f, 0, offset)); err != nil {
			return localError{err}
		}
		s.hashed = offset
		return nil
	}
	n, err := io.CopyN(s.h, s.in, offset)
	s.hashed, s.bufAt = n, n
	if err != nil {
		return verifyError{fmt.Sprintf("standard input ended after %d bytes, but the server already holds %d", n, offset)}
	}
	return nil
}

// body returns the request body from offset: for a file, the rest of it;
// for a stream, its kept chunk from offset, reading the next chunk when the
// kept one was all sent. last reports that the body ends the document (for
// a stream, its length is then known).
func (s *source) body(offset int64) (r io.Reader, length int64, err error) {
	if s.f != nil {
		return &posReader{r: io.NewSectionReader(s.f, offset, s.size-offset), at: offset, s: s}, s.size - offset, nil
	}
	if offset < s.bufAt || offset > s.bufAt+int64(len(s.buf)) {
		return nil, 0, fmt.Errorf("the server holds %d bytes, but only bytes %d to %d of standard input can still be sent", offset, s.bufAt, s.bufAt+int64(len(s.buf)))
	}
	if offset == s.bufAt+int64(len(s.buf)) && !s.eof {
		// The kept chunk is all stored: read the next one.
		s.bufAt = offset
		if s.buf == nil {
			s.buf = make([]byte, s.chunk)
		}
		n, rerr := io.ReadFull(s.in, s.buf[:cap(s.buf)])
		s.buf = s.buf[:n]
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			s.eof, s.size = true, s.bufAt+int64(n)
		case rerr != nil:
			return nil, 0, localError{fmt.Errorf("read standard input: %w", rerr)}
		}
	}
	rest := s.buf[offset-s.bufAt:]
	return &posReader{r: bytes.NewReader(rest), at: offset, s: s}, int64(len(rest)), nil
}

// posReader hashes what it hands on, knowing where in the document it is.
type posReader struct {
	r   io.Reader
	at  int64
	s   *source
	bar *progressbar.ProgressBar
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.s.hashTo(p.at, b[:n])
		p.at += int64(n)
		if p.bar != nil {
			_ = p.bar.Set64(p.at)
		}
	}
	return n, err
}

func uploadCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	kind := fs.String("kind", "", "material kind: declaration, impact_analysis, procurement, listing_application, other, supplementary, recommendation, opinion, notice, evidence")
	filename := fs.String("filename", "", "the material's file name (default: the file's own; required when reading standard input)")
	ctype := fs.String("content-type", "", "the document's media type (default: from the file name, else application/octet-stream)")
	item := fs.Int("item", 0, "supplementary only: the number of the requested item this answers")
	resume := fs.String("resume", "", "continue the upload session ID (printed when an upload stops) from where the server stands")
	chunk := fs.Int64("chunk-size", 16<<20, "bytes per request when reading a stream (kept in memory to resend after a network error)")
	retries := fs.Int("retries", 10, "attempts in a row without progress before giving up")
	mode := progressFlag(fs)
	asJSON := fs.Bool("json", false, "print the stored material as JSON instead of its id")
	return func(ctx context.Context, e *env, args []string) error {
		var caseID, path string
		switch {
		case *resume != "" && len(args) == 1:
			path = args[0]
			if *kind != "" || *filename != "" || *ctype != "" || *item != 0 {
				return usagef("--resume continues an upload as it was opened; --kind, --filename, --content-type and --item do not apply")
			}
		case *resume == "" && len(args) == 2:
			caseID, path = args[0], args[1]
			if *kind == "" {
				return usagef("upload needs --kind")
			}
		default:
			return usagef("upload takes CASE and FILE (or - for standard input), or --resume ID and FILE")
		}
		if *chunk < 1<<10 || *chunk > 1<<30 {
			return usagef("--chunk-size must be from 1 KiB to 1 GiB")
		}
		if *retries < 0 {
			return usagef("--retries must not be negative")
		}
		src, err := openSource(e, path, *chunk)
		if err != nil {
			return err
		}
		defer src.Close()
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		retry := &retryPolicy{max: *retries, e: e, what: "upload"}
		var sess vault.UploadSession
		if *resume != "" {
			id, err := pathID("upload", *resume)
			if err != nil {
				return err
			}
			if err := withRetry(ctx, retry, func() error { _, err := c.do(ctx, "GET", "/uploads/"+id, nil, &sess); return err }); err != nil {
				return err
			}
			if sess.Size != nil && src.size >= 0 && *sess.Size != src.size {
				return verifyError{fmt.Sprintf("upload %s is of %d bytes, but %s has %d", sess.ID, *sess.Size, path, src.size)}
			}
			if err := src.skipTo(sess.Offset); err != nil {
				return err
			}
		} else {
			cid, err := pathID("case", caseID)
			if err != nil {
				return err
			}
			name := *filename
			if name == "" {
				if path == "-" {
					return usagef("give --filename when reading standard input")
				}
				name = filepath.Base(path)
			}
			ct := *ctype
			if ct == "" {
				if ct = mime.TypeByExtension(filepath.Ext(name)); ct == "" {
					ct = "application/octet-stream"
				}
			}
			req := vault.NewUpload{Kind: *kind, Filename: name, ContentType: ct, Item: *item}
			if src.size >= 0 {
				size := src.size
				req.Size = &size
			}
			// A lost answer retried leaves an unused session behind, which
			// expires on its own.
			if err := withRetry(ctx, retry, func() error { _, err := c.do(ctx, "POST", "/cases/"+cid+"/uploads", req, &sess); return err }); err != nil {
				return err
			}
		}
		m, err := sendChunks(ctx, e, c, src, &sess, retry, *mode)
		if err != nil {
			if sess.Status != "completed" {
				return fmt.Errorf("%w; the server keeps what it received: continue with \"vaultctl upload --resume %s %s\"", err, sess.ID, path)
			}
			return err
		}
		local := hex.EncodeToString(src.h.Sum(nil))
		if src.hashed == m.Size && m.SHA256 != local {
			return verifyError{fmt.Sprintf("material %s stored with SHA-256 %s, but the file's is %s", m.ID, m.SHA256, local)}
		}
		if *asJSON {
			return printJSON(e.stdout, m)
		}
		fmt.Fprintln(e.stdout, m.ID)
		return nil
	}
}

// withRetry runs a small call, retrying what may pass.
func withRetry(ctx context.Context, r *retryPolicy, call func() error) error {
	for {
		err := call()
		if err == nil {
			r.progress()
			return nil
		}
		ok, hint := retryable(err)
		if !ok {
			return err
		}
		if werr := r.wait(ctx, err, hint); werr != nil {
			return werr
		}
	}
}

// sendChunks sends the document from the session's offset until the server
// has it all, resuming from the server's offset after every failure.
func sendChunks(ctx context.Context, e *env, c *client, src *source, sess *vault.UploadSession, retry *retryPolicy, mode string) (*vault.Material, error) {
	total := src.size
	if sess.Size != nil {
		total = *sess.Size
	}
	bar, err := newBar(e, mode, total, "upload "+oneLine(sess.Filename))
	if err != nil {
		return nil, err
	}
	if bar != nil {
		defer bar.Exit()
		_ = bar.Set64(sess.Offset)
	}
	for sess.Status != "completed" {
		body, length, err := src.body(sess.Offset)
		if err != nil {
			return nil, err
		}
		declare := sess.Size == nil && src.size >= 0 && sess.Offset+length == src.size
		if pr, ok := body.(*posReader); ok {
			pr.bar = bar
		}
		before := sess.Offset
		next, err := c.patch(ctx, sess.ID, sess.Offset, body, length, declare, src.size)
		if err == nil {
			*sess = next
			if sess.Offset > before {
				retry.progress()
			}
			if bar != nil && src.size >= 0 {
				bar.ChangeMax64(src.size)
			}
			continue
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Offset != nil && (ae.Code == "upload_offset_mismatch" || ae.Code == "malformed_body") {
			// The server says where it stands: go on from there.
			if *ae.Offset > before {
				retry.progress()
			}
			sess.Offset = *ae.Offset
			if werr := retry.wait(ctx, err, 0); werr != nil {
				return nil, werr
			}
			continue
		}
		ok, hint := retryable(err)
		if !ok {
			return nil, err
		}
		if werr := retry.wait(ctx, err, hint); werr != nil {
			return nil, werr
		}
		// Where does the server stand? (It may hold part of what was sent.)
		var cur vault.UploadSession
		if err := withRetry(ctx, retry, func() error { var herr error; cur, herr = c.head(ctx, sess.ID); return herr }); err != nil {
			return nil, err
		}
		if cur.Offset > before {
			retry.progress()
		}
		sess.Offset = cur.Offset
		if cur.Status == "completed" {
			// The completing chunk arrived; only its answer was lost.
			if _, err := c.do(ctx, "GET", "/uploads/"+sess.ID, nil, sess); err != nil {
				return nil, err
			}
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if sess.Material == nil {
		return nil, fmt.Errorf("upload %s completed without its material in the answer", sess.ID)
	}
	return sess.Material, nil
}

// patch sends one chunk. The body streams; the request has no total
// deadline, only the connection's idle one.
func (c *client) patch(ctx context.Context, id string, offset int64, body io.Reader, length int64, declare bool, size int64) (vault.UploadSession, error) {
	var out vault.UploadSession
	req, err := c.request(ctx, "PATCH", "/uploads/"+id, body)
	if err != nil {
		return out, err
	}
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	if declare {
		req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return out, netError("PATCH", req.URL, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return out, readProblem(res)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxAnswerBytes)).Decode(&out); err != nil {
		return out, fmt.Errorf("PATCH %s: unreadable answer: %w", redact(req.URL), err)
	}
	return out, nil
}

// head asks where an upload stands.
func (c *client) head(ctx context.Context, id string) (vault.UploadSession, error) {
	var out vault.UploadSession
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := c.request(ctx, "HEAD", "/uploads/"+id, nil)
	if err != nil {
		return out, err
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return out, netError("HEAD", req.URL, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return out, &apiError{Status: res.StatusCode, Code: map[int]string{401: "unauthenticated", 403: "forbidden", 404: "not_found"}[res.StatusCode]}
	}
	out.ID = id
	if out.Offset, err = strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64); err != nil {
		return out, fmt.Errorf("HEAD %s: no Upload-Offset in the answer", redact(req.URL))
	}
	if res.Header.Get("Content-Location") != "" {
		out.Status = "completed"
	}
	return out, nil
}

func downloadCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	output := fs.String("o", "", "where to write the document: a file (default: its own name, in the current directory) or - for standard output")
	force := fs.Bool("force", false, "replace the file if it exists")
	retries := fs.Int("retries", 10, "attempts in a row without progress before giving up")
	mode := progressFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("download takes one MATERIAL id")
		}
		id, err := pathID("material", args[0])
		if err != nil {
			return err
		}
		if *retries < 0 {
			return usagef("--retries must not be negative")
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		d := &download{c: c, id: id, e: e, retry: &retryPolicy{max: *retries, e: e, what: "download"}, mode: *mode}
		return d.run(ctx, *output, *force)
	}
}

// download fetches a material into a temporary file beside the target,
// resuming with a Range request after a network error, and renames it to
// the target only once its length and SHA-256 match what the server said.
type download struct {
	c     *client
	id    string
	e     *env
	retry *retryPolicy
	mode  string

	size int64
	sum  string
	name string
	got  int64
	h    hash.Hash
	bar  *progressbar.ProgressBar
}

func (d *download) run(ctx context.Context, output string, force bool) error {
	d.h = sha256.New()
	res, err := d.open(ctx)
	if err != nil {
		return err
	}
	var dst io.Writer
	var tmp *os.File
	target := output
	if output == "-" {
		dst = d.e.stdout
	} else {
		if target == "" {
			target = safeName(d.name, d.id)
		}
		if !force {
			if _, err := os.Lstat(target); err == nil {
				res.Body.Close()
				return usagef("%s exists; give --force to replace it, or -o another name", target)
			}
		}
		// Beside the target, so the rename is atomic; readable by the
		// user alone, like the document it will be.
		tmp, err = os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".vaultctl-*.part")
		if err != nil {
			res.Body.Close()
			return localError{err}
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		dst = tmp
	}
	if d.bar, err = newBar(d.e, d.mode, d.size, "download "+d.name); err != nil {
		res.Body.Close()
		return err
	}
	if d.bar != nil {
		defer d.bar.Exit()
	}
	for {
		err := d.copy(res, dst)
		res.Body.Close()
		if err == nil {
			break
		}
		if ok, _ := retryable(err); !ok {
			return err
		}
		before := d.got
		if werr := d.retry.wait(ctx, err, 0); werr != nil {
			return werr
		}
		if res, err = d.resume(ctx); err != nil {
			return err
		}
		if d.got > before {
			d.retry.progress()
		}
	}
	if d.bar != nil {
		_ = d.bar.Finish()
	}
	sum := hex.EncodeToString(d.h.Sum(nil))
	if d.got != d.size || sum != d.sum {
		return verifyError{fmt.Sprintf("material %s arrived as %d bytes with SHA-256 %s, but the server reports %d bytes with SHA-256 %s; nothing was kept", d.id, d.got, sum, d.size, d.sum)}
	}
	if tmp == nil {
		fmt.Fprintf(d.e.stderr, "vaultctl download: %d bytes, SHA-256 %s verified\n", d.got, d.sum)
		return nil
	}
	if err := tmp.Sync(); err != nil {
		return localError{err}
	}
	if err := tmp.Close(); err != nil {
		return localError{err}
	}
	if !force {
		if _, err := os.Lstat(target); err == nil {
			return usagef("%s appeared meanwhile; give --force to replace it", target)
		}
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return localError{err}
	}
	tmp = nil
	fmt.Fprintf(d.e.stdout, "%s\t%d bytes\tsha256 %s verified\n", target, d.got, d.sum)
	return nil
}

// open starts the download, retrying what may pass.
func (d *download) open(ctx context.Context) (*http.Response, error) {
	var res *http.Response
	err := withRetry(ctx, d.retry, func() error {
		var err error
		res, err = d.get(ctx, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	d.sum = strings.ToLower(res.Header.Get("X-Content-SHA256"))
	if len(d.sum) != 64 {
		res.Body.Close()
		return nil, fmt.Errorf("the server sent no X-Content-SHA256 to verify the download against")
	}
	if d.size = res.ContentLength; d.size < 0 {
		res.Body.Close()
		return nil, fmt.Errorf("the server sent no Content-Length")
	}
	_, params, _ := mime.ParseMediaType(res.Header.Get("Content-Disposition"))
	d.name = params["filename"] // mime decodes filename* into it
	return res, nil
}

// resume continues after a failure with a Range request from what arrived,
// checking it is the same document.
func (d *download) resume(ctx context.Context) (*http.Response, error) {
	var res *http.Response
	err := withRetry(ctx, d.retry, func() error {
		var err error
		res, err = d.get(ctx, d.got)
		return err
	})
	if err != nil {
		return nil, err
	}
	if d.got == 0 {
		return res, nil
	}
	want := fmt.Sprintf("bytes %d-%d/%d", d.got, d.size-1, d.size)
	if res.StatusCode != http.StatusPartialContent || res.Header.Get("Content-Range") != want || strings.ToLower(res.Header.Get("X-Content-SHA256")) != d.sum {
		res.Body.Close()
		return nil, fmt.Errorf("the server did not continue the same document from byte %d (status %d, %q)", d.got, res.StatusCode, res.Header.Get("Content-Range"))
	}
	return res, nil
}

func (d *download) get(ctx context.Context, from int64) (*http.Response, error) {
	req, err := d.c.request(ctx, "GET", "/materials/"+d.id+"/content", nil)
	if err != nil {
		return nil, err
	}
	if from > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
	}
	res, err := d.c.hc.Do(req)
	if err != nil {
		return nil, netError("GET", req.URL, err)
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		return nil, readProblem(res)
	}
	return res, nil
}

// copy appends the response body to dst, hashing it.
func (d *download) copy(res *http.Response, dst io.Writer) error {
	buf := make([]byte, 256<<10)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if d.got+int64(n) > d.size {
				return verifyError{fmt.Sprintf("material %s: the server sent more than the %d bytes it announced", d.id, d.size)}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return localError{fmt.Errorf("write: %w", err)}
			}
			d.h.Write(buf[:n])
			d.got += int64(n)
			if d.bar != nil {
				_ = d.bar.Set64(d.got)
			}
		}
		if rerr == io.EOF {
			if d.got < d.size {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// safeName makes the server's filename a plain name in the current
// directory: never a path, never hidden, never empty.
func safeName(name, id string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if terminalControl(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	if name == "" || name == "/" {
		return "material-" + id
	}
	return name
}
