package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Confidential metadata at rest (issue 8, item 4): a copy of the database
// reveals none of the confidential text of a case, a complaint or a report.

// TestConfidentialTextAtRest plants a distinctive marker in every
// confidential text field through the real API (titles, products,
// filenames, declaration statements, reasons, opinion comments, consent
// purposes, complaint texts and notes, commitments and urgings, report
// texts, messages, outcomes and attachment names), checks each reads back
// through the API, then scans the raw bytes of the SQLite database with its
// WAL (and the whole data directory) while the server runs and after it
// stopped, and a pg_dump of the PostgreSQL schema: no marker may appear.
// A plain field (an organisation's name) must be found by the same scan, so
// a scan that sees nothing proves nothing.
func TestConfidentialTextAtRest(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			coverYears(t, s)
			muOrg := orgOf(t, w.mu)
			w.office.expect(201, "POST", "/member-units", map[string]any{"org": muOrg, "unit": "miit"})
			tok := make([]byte, 5)
			_, _ = rand.Read(tok)
			token := "QZ" + hex.EncodeToString(tok)
			marker := func(field string) string { return token + "-" + field }
			planted := map[string]bool{}
			mark := func(field string) string { planted[field] = true; return marker(field) }

			// The case and its materials.
			var cs struct{ ID, Title, Product string }
			w.op.expect(201, "POST", "/cases", map[string]any{"title": mark("TITLE") + " 核心路由器", "product": mark("PRODUCT"),
				"providers": []string{w.provOrg}}).json(t, &cs)
			caseID := cs.ID
			docs := map[string]string{}
			for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
				docs[k] = w.op.upload(t, caseID, k, mark("FILENAME-"+k)+".txt", "document "+k)
			}
			var mp bytes.Buffer
			mw := multipart.NewWriter(&mp)
			mw.WriteField("kind", "other")
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s 附件.pdf"`, mark("FILENAME-MULTIPART")))
			h.Set("Content-Type", "application/pdf")
			fw, _ := mw.CreatePart(h)
			fw.Write([]byte("%PDF-1.7"))
			mw.Close()
			if r := s.do(t, w.op.token, "POST", "/cases/"+caseID+"/materials", &mp, map[string]string{"Content-Type": mw.FormDataContentType()}); r.Status != 201 {
				t.Fatalf("multipart upload: %d %s", r.Status, r.Body)
			}
			w.prov.upload(t, caseID, "other", mark("FILENAME-PROVIDER")+".txt", "provider document")
			var consent struct{ ID string }
			w.op.expect(201, "POST", "/materials/"+docs["procurement"]+"/consents", map[string]any{"org": w.provOrg, "purpose": mark("CONSENT")}).json(t, &consent)

			// The review: declarations, reasons, a recommendation, an opinion.
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			move := func(action string, extra map[string]any) {
				t.Helper()
				body := map[string]any{"action": action}
				for k, v := range extra {
					body[k] = v
				}
				w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", body)
			}
			move("require_review", nil)
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
			w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": mark("STATEMENT")})
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev2.id, "role": "reviewer", "purpose": "second look"})
			w.rev2.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": true, "statement": mark("STATEMENT-CONFLICT")})
			w.rev1.expect(200, "GET", "/materials/"+docs["declaration"]+"/content", nil)
			move("extend", map[string]any{"reason": mark("REASON-EXTEND")})
			move("request_supplement", map[string]any{"reason": mark("REASON-SUPPLEMENT"), "items": []string{mark("ITEM")}})
			// The party's upload answering the item ends the request.
			w.op.upload(t, caseID, "supplementary", mark("FILENAME-SUPPLEMENT")+".txt", "supplement")
			w.rev1.upload(t, caseID, "recommendation", mark("FILENAME-RECOMMENDATION")+".txt", "recommendation")
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.mu.id, "role": "member_unit", "purpose": "opinion"})
			w.mu.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": mark("STATEMENT-MEMBER")})
			move("recommend", map[string]any{"reason": mark("REASON-RECOMMEND")})
			w.mu.upload(t, caseID, "opinion", mark("FILENAME-OPINION")+".txt", "opinion")
			w.mu.expect(201, "POST", "/cases/"+caseID+"/opinions", map[string]any{"agree": false, "comment": mark("COMMENT")})
			move("extend_special", map[string]any{"days": 3, "reason": mark("REASON-SPECIAL")})
			// The special review's steps, to a structured conclusion.
			move("record_hearing", map[string]any{"reason": mark("HEARING")})
			w.rev1.upload(t, caseID, "recommendation", mark("FILENAME-RECOMMENDATION-2")+".txt", "second recommendation")
			move("recommend", map[string]any{"members": []string{muOrg}})
			w.mu.expect(201, "POST", "/cases/"+caseID+"/opinions", map[string]any{"agree": true, "comment": mark("COMMENT-2")})
			move("record_approval", map[string]any{"reference": mark("REFERENCE")})
			move("conclude", map[string]any{"outcome": "passed_with_conditions", "conditions": []string{mark("CONDITION")},
				"factors": []map[string]string{{"factor": "supply_interruption", "finding": mark("FINDING")}}})

			// A listing abroad (2021): its venue.
			var listing struct{ ID string }
			w.op.expect(201, "POST", "/cases", map[string]any{"title": "listing", "product": "shares", "type": "listing_abroad",
				"listing_venue": mark("VENUE"), "users_with_personal_info": 2000000}).json(t, &listing)
			// A review a member unit proposes, opened on the operator's
			// behalf, with the measures it requires and the report on them.
			var prop struct{ ID string }
			w.mu.expect(201, "POST", "/proposals", map[string]any{"party_org": w.opOrg, "subject": "product", "title": mark("PROPOSAL-TITLE"),
				"product": mark("PROPOSAL-PRODUCT"), "reason": mark("PROPOSAL-REASON")}).json(t, &prop)
			var approved struct {
				Case struct{ ID string } `json:"case"`
			}
			w.office.expect(201, "POST", "/proposals/"+prop.ID+"/approval", map[string]any{"reference": mark("PROPOSAL-REFERENCE")}).json(t, &approved)
			proposed := approved.Case.ID
			for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
				w.op.upload(t, proposed, k, k+".txt", "document "+k)
			}
			w.op.expect(200, "POST", "/cases/"+proposed+"/submit", nil)
			w.office.expect(200, "POST", "/cases/"+proposed+"/transitions", map[string]any{"action": "require_review"})
			w.office.expect(200, "POST", "/cases/"+proposed+"/transitions", map[string]any{"action": "record_measures", "measures": []string{mark("MEASURE")}})
			w.op.expect(201, "POST", "/cases/"+proposed+"/measure-reports", map[string]any{"measure": 1, "report": mark("MEASURE-REPORT")})

			// A complaint, a commitment and an urging.
			evidence := w.op.upload(t, caseID, "evidence", mark("FILENAME-EVIDENCE")+".txt", "evidence")
			// The reviewer the operator names is the one its audit view shows.
			if find(w.op.events("case="+caseID+"&action=material.read"), func(e event) bool { return e.Actor == "R1" }) == nil {
				t.Fatal("the operator is not shown rev1's read as R1")
			}
			var cmp struct{ ID string }
			w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "subject": "R1", "kind": "confidentiality",
				"description": mark("COMPLAINT"), "evidence": []string{evidence}}).json(t, &cmp)
			w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/status", map[string]any{"status": "investigating", "note": mark("NOTE-STATUS")})
			w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/resolution", map[string]any{"outcome": "dismissed", "note": mark("NOTE-RESOLUTION")})
			var cm struct{ ID string }
			w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "other", "text": mark("COMMITMENT")}).json(t, &cm)
			w.op.expect(201, "POST", "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", map[string]any{"note": mark("URGE")})
			w.insp.expect(200, "POST", "/commitments/"+cm.ID+"/status", map[string]any{"status": "breached", "note": mark("COMMITMENT-FINDING")})

			// A report from the public, its attachment and messages.
			jsonH := map[string]string{"Content-Type": "application/json"}
			r := s.do(t, "", "POST", "/reports", strings.NewReader(fmt.Sprintf(`{"description":%q}`, mark("REPORT"))), jsonH)
			if r.Status != 201 {
				t.Fatalf("report: %d %s", r.Status, r.Body)
			}
			var filed struct{ ID, Receipt string }
			r.json(t, &filed)
			if r := s.do(t, "", "POST", "/reports/attachments?filename="+url.QueryEscape(mark("ATTACHMENT-NAME")+".txt"), strings.NewReader("capture"),
				map[string]string{"X-Receipt": filed.Receipt, "Content-Type": "text/plain"}); r.Status != 201 {
				t.Fatalf("attachment: %d %s", r.Status, r.Body)
			}
			if r := s.do(t, "", "POST", "/reports/messages", strings.NewReader(fmt.Sprintf(`{"text":%q}`, mark("MESSAGE-REPORTER"))),
				map[string]string{"X-Receipt": filed.Receipt, "Content-Type": "application/json"}); r.Status != 201 {
				t.Fatalf("reporter message: %d %s", r.Status, r.Body)
			}
			w.insp.expect(201, "POST", "/reports/"+filed.ID+"/messages", map[string]any{"text": mark("MESSAGE-INSPECTOR")})
			w.insp.expect(200, "POST", "/reports/"+filed.ID+"/status", map[string]any{"status": "closed", "outcome": mark("OUTCOME")})

			// Everything planted reads back through the API, to those who may see it.
			var seen strings.Builder
			for _, get := range []struct {
				c    *client
				path string
			}{
				{w.op, "/cases/" + caseID}, {w.office, "/cases/" + caseID + "/materials"}, {w.prov, "/cases/" + caseID + "/materials"},
				{w.office, "/cases/" + caseID + "/events"}, {w.op, "/materials/" + docs["procurement"] + "/consents"},
				{w.insp, "/complaints/" + cmp.ID}, {w.insp, "/cases/" + caseID + "/materials"}, {w.op, "/commitments"},
				{w.insp, "/reports/" + filed.ID}, {w.op, "/cases/" + listing.ID}, {w.office, "/proposals"},
				{w.office, "/cases/" + proposed + "/events"},
			} {
				seen.Write(get.c.expect(200, "GET", get.path, nil).Body)
			}
			var shown []string
			for f := range planted {
				if !strings.Contains(seen.String(), marker(f)) && !strings.HasPrefix(f, "STATEMENT") {
					t.Errorf("%s was not read back through the API", f)
				}
				shown = append(shown, f)
			}
			sort.Strings(shown)
			t.Logf("planted %d markers: %s", len(shown), strings.Join(shown, " "))

			// The scans.
			// pg_dump writes bytea columns in hex: plaintext stored as bytes
			// would show as the token's hex, so both forms are looked for.
			hexToken := []byte(hex.EncodeToString([]byte(token)))
			scan := func(where string, data []byte) {
				t.Helper()
				if i := bytes.Index(data, []byte(token)); i >= 0 {
					end := min(len(data), i+len(token)+30)
					t.Errorf("%s holds the plaintext %q", where, data[i:end])
				}
				if i := bytes.Index(bytes.ToLower(data), hexToken); i >= 0 {
					end := min(len(data), i+len(hexToken)+60)
					t.Errorf("%s holds the plaintext in hex %q", where, data[i:end])
				}
			}
			scanDir := func(when string) bool {
				found := false
				filepath.WalkDir(s.data, func(path string, d os.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("read %s: %v", path, err)
					}
					scan(when+" "+strings.TrimPrefix(path, s.data), b)
					found = found || bytes.Contains(b, []byte("Grid Co"))
					return nil
				})
				return found
			}
			if strings.HasPrefix(be.name, "sqlite") {
				if _, err := os.Stat(filepath.Join(s.data, "vault.db-wal")); err != nil {
					t.Fatalf("no WAL to scan while the server runs: %v", err)
				}
				if !scanDir("while running:") {
					t.Fatal("the scan did not find a plain field (the organisation's name): it proves nothing")
				}
				s.stop()
				if !scanDir("after stop:") {
					t.Fatal("the scan did not find a plain field after stop")
				}
			} else {
				dump := pgDump(t, s.dbURL())
				if !bytes.Contains(dump, []byte("Grid Co")) || !bytes.Contains(dump, []byte("material_consents")) {
					t.Fatalf("the pg_dump (%d bytes) lacks the plain fields and tables it must hold", len(dump))
				}
				scan("pg_dump", dump)
				scanDir("data directory:")
				s.stop()
			}
			if strings.Contains(s.log.String(), token) {
				t.Error("a marker reached the server log")
			}
		})
	}
}

// pgDump dumps the schema the server's database URL points at, with the
// pg_dump of the PostgreSQL installation the tests run.
func pgDump(t *testing.T, dbURL string) []byte {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		sort.Slice(matches, func(i, j int) bool { return pgVersion(matches[i]) < pgVersion(matches[j]) })
		if len(matches) == 0 {
			if os.Getenv("CI") == "true" {
				t.Fatal("pg_dump is required under CI=true and was not found")
			}
			t.Skip("pg_dump not found")
		}
		bin = matches[len(matches)-1]
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	if schema == "" {
		t.Fatalf("database URL names no schema")
	}
	q.Del("search_path")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--no-owner", "--no-privileges", "--schema="+schema, "--dbname="+u.String())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, errb.String())
	}
	return out.Bytes()
}

func pgVersion(path string) int {
	var v int
	fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(path))), "%d", &v)
	return v
}
