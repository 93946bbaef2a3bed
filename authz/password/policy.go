package password

import (
	"strings"
	"unicode"
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
	// already tells a guessable one (64 characters hold any passphrase's
	// first five words).
	scoredRunes = 64
)

// PolicyError says why a password was refused; its message is for the
// person choosing the password and never contains it.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// Check returns a *PolicyError when pw breaks the policy: too short or too
// long, invalid UTF-8, equal to or containing one of personal (the email,
// its local part, the username, the name: what an attacker knows of the
// person), or easily guessed. Guessable is judged on the comparison form
// (Fold: NFKC and case folding, so that "１" is "1" and "ß" is "ss", in
// every script alike): fewer than MinDistinct different characters, fewer
// than MinVaried characters that neither repeat nor step on from the one
// before ("ааааа", "абвгд", "１２３４"), a whole made of one shorter part
// repeated ("парольпароль"), a common password of some language with only
// digits and symbols around it ("пароль123456", "Passwort2024!"), or a
// zxcvbn estimate below MinScore with personal and the common passwords
// as its own dictionary.
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
	scored := []rune(folded)
	if len(scored) > scoredRunes {
		scored = scored[:scoredRunes]
	}
	if guessable(scored) {
		return errGuessable
	}
	if zxcvbn.PasswordStrength(string(scored), append(inputs, common...)).Score < MinScore {
		return errGuessable
	}
	return nil
}

var errGuessable = &PolicyError{"the password is too easy to guess: use a longer phrase of unrelated words or random characters"}

// Shape limits of Check, on the comparison form.
const (
	// MinDistinct is the least number of different characters.
	MinDistinct = 5
	// MinVaried is the least number of characters that neither repeat
	// the one before nor step on from it by one code point.
	MinVaried = 8
)

// guessable reports whether the folded password rs has one of the shapes
// that no estimate should have to find: too few different characters,
// too few varied ones, one part repeated, or a common password with only
// digits and symbols around it.
func guessable(rs []rune) bool {
	distinct := map[rune]bool{}
	varied := 0
	for i, r := range rs {
		distinct[r] = true
		if i == 0 {
			varied++
			continue
		}
		if d := r - rs[i-1]; d != 0 && d != 1 && d != -1 {
			varied++
		}
	}
	if len(distinct) < MinDistinct || varied < MinVaried {
		return true
	}
	for unit := 1; unit <= len(rs)/2; unit++ {
		if len(rs)%unit == 0 && repeats(rs, unit) {
			return true
		}
	}
	var letters []rune
	for _, r := range rs {
		if unicode.IsLetter(r) || unicode.Is(unicode.M, r) {
			letters = append(letters, r)
		}
	}
	if len(letters) == 0 {
		return false // digits and symbols only: the estimate judges them
	}
	word := string(letters)
	for _, c := range common {
		if c == word || (strings.HasPrefix(word, c) && len(word)%len(c) == 0 && strings.Repeat(c, len(word)/len(c)) == word) {
			return true
		}
	}
	return false
}

// repeats reports whether rs is its first unit runes over and over.
func repeats(rs []rune, unit int) bool {
	for i := unit; i < len(rs); i++ {
		if rs[i] != rs[i-unit] {
			return false
		}
	}
	return true
}

// common are the words for "password" and the most used passwords and
// keyboard rows of the languages the people of an installation are likely
// to write, in comparison form (Fold): zxcvbn's own lists are English.
var common = []string{
	"password", "passwort", "kennwort", "contraseña", "contrasena", "motdepasse", "wachtwoord", "parola",
	"senha", "palavrapasse", "hasło", "haslo", "lösenord", "losenord", "salasana", "adgangskode", "passord",
	"jelszó", "jelszo", "heslo", "geslo", "lozinka", "parool", "parole", "slaptažodis", "şifre", "sifre",
	"пароль", "парола", "лозинка", "гасло", "κωδικός", "κωδικοσ", "סיסמה", "كلمةالسر", "密码", "密碼",
	"パスワード", "ぱすわーど", "비밀번호", "รหัสผ่าน", "mậtkhẩu", "katasandi", "kataláluan",
	"qwerty", "qwertz", "azerty", "asdfgh", "yxcvbn", "йцукен", "фывапр", "ячсмит", "admin", "administrator",
	"iloveyou", "ichliebedich", "jetaime", "teamo", "tiamo", "привет", "любовь", "люблютебя", "welcome",
	"willkommen", "bienvenue", "bienvenido", "letmein", "monkey", "dragon", "football", "fussball", "hallo",
	"hello", "sommer", "summer", "winter", "secret", "geheim", "secreto", "segreto", "passe", "test", "master",
}

// Fold is the one comparison form of names and passwords, which
// authz.CanonicalName returns for names: Unicode NFKC, then full case
// folding (ß → ss, the Kelvin sign → k), then NFKC again (folding can
// leave a string that is not normalized), with every folded character
// lower-cased, since folding maps a few scripts to upper case (Cherokee
// letters fold to their capitals, and golang.org/x/text folds them back
// and forth). It is stable: Fold of its result is that result. A
// cases.Caser keeps state, so each call makes its own.
func Fold(s string) string {
	c := foldOnce(s)
	for range 3 {
		next := foldOnce(c)
		if next == c {
			break
		}
		c = next
	}
	return c
}

func foldOnce(s string) string {
	return norm.NFKC.String(strings.Map(unicode.ToLower, cases.Fold().String(norm.NFKC.String(s))))
}
