package crypt_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/crvault/crvault/vault/crypt"
)

// The life of a material: the case key row and the header row go to the
// database, the payload to the blob store.
func Example() {
	master, _ := crypt.GenerateMaster() // vaultd: crypt.LoadOrCreateMaster("<data>/keys")

	wrapped, _ := master.NewCaseKey() // stored in the case's key row
	caseKey, _ := master.OpenCaseKey(wrapped)

	doc := "the declaration"
	size := int64(len(doc))
	fmt.Println("payload size:", crypt.PayloadSize(size)) // told to the blob store up front
	sr, _ := caseKey.SealReader(strings.NewReader(doc), size, size, nil)
	var blob bytes.Buffer // the blob store, reading the payload
	io.Copy(&blob, sr)
	header := sr.Header() // stored beside the material row

	r, _ := caseKey.OpenStream(header, &blob)
	plain, _ := io.ReadAll(r)
	fmt.Println(string(plain))
	// Output:
	// payload size: 47
	// the declaration
}
