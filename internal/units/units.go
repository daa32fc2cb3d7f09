// Package units formats and parses quantities for people.
package units

import (
	"fmt"
	"math/big"
	"strings"
)

// Bytes formats a byte count in binary units: "512 B", "12.3 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseBytes parses a byte count written for people: an integer or decimal
// number followed by a unit, or a bare integer meaning bytes. Units are
// decimal (B, kB or KB, MB, GB, TB: powers of 1000), binary (KiB, MiB, GiB,
// TiB: powers of 1024) or bits (bit, kbit, Mbit, Gbit: powers of 1000
// bits, divided by 8). Spaces between number and unit are allowed; case
// matters beyond the k/K of kilo ("mb" is refused: milli-bits make no
// sense). The result must be a whole number of bytes, not negative, and
// fit in an int64. Errors name the text and what was expected.
func ParseBytes(s string) (int64, error) {
	num, unit, err := splitQuantity(s)
	if err != nil {
		return 0, err
	}
	mul, div, ok := byteUnit(unit)
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, bit, kbit, Mbit or Gbit)", s, unit)
	}
	return scale(s, num, mul, div)
}

// ParseRate parses a bandwidth: a ParseBytes quantity followed by "/s"
// ("2MB/s", "512kbit/s", "1MiB/s"), or a bare integer meaning bytes per
// second. It returns bytes per second.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if q, ok := strings.CutSuffix(t, "/s"); ok {
		if strings.TrimSpace(q) == "" {
			return 0, fmt.Errorf("%q: no quantity before /s", s)
		}
		if _, unit, err := splitQuantity(q); err == nil && unit == "" {
			return 0, fmt.Errorf("%q: a unit goes before /s (e.g. \"2MB/s\")", s)
		}
		return ParseBytes(q)
	}
	num, unit, err := splitQuantity(t)
	if err != nil {
		return 0, err
	}
	if unit != "" {
		return 0, fmt.Errorf("%q: a rate ends in /s (e.g. \"2MB/s\")", s)
	}
	return scale(s, num, 1, 1)
}

// splitQuantity splits "12.5 MiB" into "12.5" and "MiB".
func splitQuantity(s string) (string, string, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return "", "", fmt.Errorf("%q: not a quantity (want a number and a unit, e.g. \"500MB\")", s)
	}
	if strings.Count(num, ".") > 1 || num[0] == '.' || num[len(num)-1] == '.' {
		return "", "", fmt.Errorf("%q: %q is not a number", s, num)
	}
	return num, unit, nil
}

func byteUnit(u string) (mul, div int64, ok bool) {
	switch u {
	case "", "B":
		return 1, 1, true
	case "kB", "KB":
		return 1000, 1, true
	case "MB":
		return 1000 * 1000, 1, true
	case "GB":
		return 1000 * 1000 * 1000, 1, true
	case "TB":
		return 1000 * 1000 * 1000 * 1000, 1, true
	case "KiB":
		return 1 << 10, 1, true
	case "MiB":
		return 1 << 20, 1, true
	case "GiB":
		return 1 << 30, 1, true
	case "TiB":
		return 1 << 40, 1, true
	case "bit":
		return 1, 8, true
	case "kbit", "Kbit":
		return 1000, 8, true
	case "Mbit":
		return 1000 * 1000, 8, true
	case "Gbit":
		return 1000 * 1000 * 1000, 8, true
	}
	return 0, 0, false
}

// scale computes num×mul/div exactly (num may have a decimal fraction) and
// refuses a fraction of a byte or an overflow.
func scale(s, num string, mul, div int64) (int64, error) {
	whole, frac, _ := strings.Cut(num, ".")
	if len(whole) > 19 || len(frac) > 9 {
		return 0, fmt.Errorf("%q: number too long", s)
	}
	n := new(big.Int)
	n.SetString(whole+frac, 10)
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	n.Mul(n, big.NewInt(mul))
	den.Mul(den, big.NewInt(div))
	q, r := new(big.Int).QuoRem(n, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, fmt.Errorf("%q: not a whole number of bytes", s)
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return q.Int64(), nil
}
