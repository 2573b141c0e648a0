package decode

import (
	"math"
	"strconv"
	"testing"
)

// FuzzExactDecimal: the fast path gives ParseFloat's value, bit for bit, whenever it answers.
func FuzzExactDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0", "35.5", "-12.25", "150", "1764210904123.456", "0.1", "999999999999999",
		"9999999999999999", "0.000000000000001", "2.1", "1e5", "12.5e-3", "9007199254740991", "9007199254740993",
		"1764252381123.456", "12345678901234567890", "0.1234567890123456789", "-0.0000000000000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc := scanner{buf: []byte(s)}
		raw, err := sc.number()
		if err != nil || sc.pos != len(s) {
			return // not a JSON number: the fast path never sees it
		}
		got, ok := exactDecimal(raw)
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: fast path %v, ParseFloat %v (%v)", s, got, want, err)
		}
	})
}
