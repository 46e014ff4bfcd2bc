package supervision

import (
	"crypto/rand"
	"errors"
	"strings"
)

// A receipt is "<report id>.<secret>": the id (not secret) finds the row,
// and the secret, 130 random bits in 26 characters of the same base32
// alphabet as ids, is checked against its argon2id hash. The receipt is
// shown once and never stored.
const secretLen = 26

// idLen is the length of a report id (validID).
const idLen = 26

var errMalformedReceipt = errors.New("malformed receipt")

func newSecret() string {
	var b [17]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])[:secretLen]
}

// ParseReceipt splits a receipt into report id and secret, refusing anything
// this server could not have issued (before any database or hashing work).
//
// A receipt is shown once, and a member of the public may well copy it by
// hand and type it back days later: it is read as Crockford's base32 is
// meant to be, whatever the letter case, with O for 0, I and L for 1, and
// spaces and hyphens (grouping) ignored; the dot may be left out. None of
// that adds a guess: every character still stands for the same five bits
// of the issued receipt.
func ParseReceipt(receipt string) (id, secret string, err error) {
	receipt = strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\t' || r == '\n' || r == '\r':
			return -1
		case r == 'o' || r == 'O':
			return '0'
		case r == 'i' || r == 'I' || r == 'l' || r == 'L':
			return '1'
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, receipt)
	id, secret, ok := strings.Cut(receipt, ".")
	if !ok && len(receipt) == idLen+secretLen {
		// The dot left out in copying.
		id, secret, ok = receipt[:idLen], receipt[idLen:], true
	}
	if !ok || !validID(id) || len(secret) != secretLen {
		return "", "", errMalformedReceipt
	}
	for _, r := range secret {
		if !strings.ContainsRune("0123456789abcdefghjkmnpqrstvwxyz", r) {
			return "", "", errMalformedReceipt
		}
	}
	return id, secret, nil
}
