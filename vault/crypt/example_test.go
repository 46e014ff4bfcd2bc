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

	var blob bytes.Buffer // the blob store; its size is known up front
	size := int64(len("the declaration"))
	fmt.Println("payload size:", crypt.PayloadSize(size))
	s, _ := caseKey.Encrypt(&blob)
	io.Copy(s, strings.NewReader("the declaration"))
	s.Close()
	header := s.Header() // stored beside the material row

	r, _ := caseKey.OpenStream(header, &blob)
	plain, _ := io.ReadAll(r)
	fmt.Println(string(plain))
	// Output:
	// payload size: 47
	// the declaration
}
