package password

import (
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Policy limits: 12 to 256 characters, any characters, no
// composition rules.
const (
	MinLength = 12
	MaxLength = 256
	// MinScore is the least zxcvbn score (0 to 4) accepted: 3 means more
	// than 10^8 guesses, "safely unguessable" for an online attacker and a
	// strong defence against an offline one with a slow hash.
	MinScore = 3
	// scoredRunes is how much of a password the estimate reads: zxcvbn's
	// matching grows faster than linearly, and a long password's head
	// already tells a guessable one (zxcvbn itself truncates at 100).
	scoredRunes = 100
)

// PolicyError says why a password was refused; its message is for the
// person choosing the password and never contains it.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// Check returns a *PolicyError when pw breaks the policy: too short or too
// long, invalid UTF-8, equal to or containing one of personal (the email,
// its local part, the username, the name: what an attacker knows of the
// person), or easily guessed (a zxcvbn estimate with personal as user
// inputs below MinScore).
func Check(pw string, personal ...string) error {
	if !utf8.ValidString(pw) {
		return &PolicyError{"the password is not valid UTF-8 text"}
	}
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinLength:
		return &PolicyError{"the password must be at least 12 characters long"}
	case n > MaxLength:
		return &PolicyError{"the password must be at most 256 characters long"}
	}
	folded := Fold(pw)
	var inputs []string
	for _, p := range personal {
		if p == "" {
			continue
		}
		fp := Fold(p)
		inputs = append(inputs, fp)
		if local, _, ok := strings.Cut(fp, "@"); ok && local != "" {
			inputs = append(inputs, local)
		}
	}
	for _, in := range inputs {
		if folded == in || (utf8.RuneCountInString(in) >= 4 && strings.Contains(folded, in)) {
			return &PolicyError{"the password must not be or contain the email, username or name"}
		}
	}
	scored := pw
	if n > scoredRunes {
		scored = string([]rune(pw)[:scoredRunes])
	}
	if zxcvbn.PasswordStrength(scored, inputs).Score < MinScore {
		return &PolicyError{"the password is too easy to guess: use a longer phrase of unrelated words or random characters"}
	}
	return nil
}

var folder = cases.Fold()

// Fold is the comparison form of a name or a password: Unicode NFKC, then
// case folding.
func Fold(s string) string { return folder.String(norm.NFKC.String(s)) }
