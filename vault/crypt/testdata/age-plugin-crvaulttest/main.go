// Command age-plugin-crvaulttest is a stand-in for a hardware-token age
// plugin (age-plugin-yubikey, age-plugin-tpm), built by the tests. Its
// "token" is the X25519 identity in the file named by CRVAULT_TEST_TOKEN,
// which the plugin alone reads: the identity string the client holds
// (AGE-PLUGIN-CRVAULTTEST-1...) names a slot and is no secret, as with a
// real token. Without the token file, nothing opens.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/plugin"
)

func token() (*age.X25519Identity, error) {
	path := os.Getenv("CRVAULT_TEST_TOKEN")
	if path == "" {
		return nil, errors.New("no token plugged in (CRVAULT_TEST_TOKEN unset)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return age.ParseX25519Identity(strings.TrimSpace(string(b)))
}

type tokenIdentity struct{ slot string }

func (t tokenIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	id, err := token()
	if err != nil {
		return nil, err
	}
	return id.Unwrap(stanzas)
}

func main() {
	p, err := plugin.New("crvaulttest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p.HandleRecipient(func(data []byte) (age.Recipient, error) {
		// The recipient's data is the token's X25519 recipient string.
		return age.ParseX25519Recipient(string(data))
	})
	p.HandleIdentity(func(data []byte) (age.Identity, error) {
		return tokenIdentity{slot: string(data)}, nil
	})
	os.Exit(p.Main())
}
