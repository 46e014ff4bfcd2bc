package web

import (
	"image"
	"image/color"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/crvault/crvault/access"
)

// TestQRSVGScans: the SVG drawn for an enrolment, read back as the picture
// it draws and scanned by an independent QR decoder (ZXing's), gives the
// otpauth URL exactly, for fifty keys; the label is escaped. The decoder
// reads the picture as a pure barcode: its finder-pattern search misses
// about one clean code in fifty, which a phone's scanner does not.
func TestQRSVGScans(t *testing.T) {
	svg, err := qrSVG("otpauth://totp/x", `密钥的二维码 "<b>"`)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(svg); strings.Contains(s, "<b>") || !strings.Contains(s, `aria-label="密钥的二维码 &#34;&lt;b&gt;&#34;"`) {
		t.Fatalf("label not escaped: %s", s[:200])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		var secret strings.Builder
		for range 32 {
			secret.WriteByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[rng.IntN(32)])
		}
		url := "otpauth://totp/crvault:user" + strconv.Itoa(i) + "?secret=" + secret.String() + "&issuer=crvault&algorithm=SHA1&digits=6&period=30"
		if got := scanSVG(t, url); got != url {
			t.Fatalf("scanned %q, want %q", got, url)
		}
	}
}

// scanSVG draws content with qrSVG, paints the path's rectangles at 4
// pixels a module and decodes the picture.
func scanSVG(t *testing.T, content string) string {
	t.Helper()
	svg, err := qrSVG(content, "QR")
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	m := regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`).FindStringSubmatch(s)
	if m == nil || m[1] != m[2] {
		t.Fatalf("no square viewBox: %s", s[:200])
	}
	n, _ := strconv.Atoi(m[1])
	const scale = 4
	img := image.NewGray(image.Rect(0, 0, n*scale, n*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	runs := regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`).FindAllStringSubmatch(s, -1)
	if len(runs) == 0 {
		t.Fatal("no dark modules drawn")
	}
	for _, r := range runs {
		x, _ := strconv.Atoi(r[1])
		y, _ := strconv.Atoi(r[2])
		w, _ := strconv.Atoi(r[3])
		if r[3] != r[4] || x+w > n || y >= n {
			t.Fatalf("run %q outside the %d-module code", r[0], n)
		}
		for px := x * scale; px < (x+w)*scale; px++ {
			for py := y * scale; py < (y+1)*scale; py++ {
				img.SetGray(px, py, color.Gray{})
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxingqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("the drawn code does not scan: %v", err)
	}
	return res.GetText()
}

// TestTOTPLink: the enrolment page links the otpauth URL for an
// authenticator app on the same device (html/template would write
// "#ZgotmplZ" for a scheme it does not know), and only a TOTP key URI.
func TestTOTPLink(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	const uri = "otpauth://totp/crvault:office?secret=JBSWY3DPEHPK3PXP&issuer=crvault&algorithm=SHA1&digits=6&period=30"
	for _, tag := range languages {
		var b strings.Builder
		p := &page{L: cat.locale(tag), User: &access.User{DisplayName: "x"}, Data: totpView{Secret: "JBSWY3DPEHPK3PXP", OTPAuthURL: otpauthLink(uri)}}
		if err := e.views["totp"].Execute(&b, p); err != nil {
			t.Fatal(err)
		}
		want := `<a id="totp-link" href="` + strings.ReplaceAll(uri, "&", "&amp;") + `">` + p.L.T("totp.open_app") + `</a>`
		if !strings.Contains(b.String(), want) || strings.Contains(b.String(), "ZgotmplZ") {
			t.Errorf("%s: the page lacks %s", tag, want)
		}
	}
	for _, bad := range []string{"", "javascript:alert(1)", "otpauth://hotp/x?secret=A", "https://evil.example/", "otpauth://totp/x\"><script>", "otpauth://totp/a b"} {
		if got := otpauthLink(bad); got != "" {
			t.Errorf("otpauthLink(%q) = %q, want no link", bad, got)
		}
	}
}
