package devices

import (
	"bytes"
	"encoding/csv"
	"io"
	"strings"
)

// CountCSVRows returns how many rows after the header a device sheet has, blank rows not
// counted, without checking any of them: what an import limit needs before the expensive
// work. It reads the text as ParseCSV does; a sheet ParseCSV cannot read counts as far as it
// could be read. It stops counting at stopAfter+1 (0: no stop); a sheet within stopAfter may get
// an upper bound (its line count) instead of the exact figure.
func CountCSVRows(b []byte, stopAfter int) int {
	// Cheap bound first: a sheet cannot have more records than line ends.
	if stopAfter > 0 && bytes.Count(b, []byte{'\n'}) <= stopAfter {
		return bytes.Count(b, []byte{'\n'}) // an upper bound is enough to say "within the limit"
	}
	text, err := decodeCSVText(b)
	if err != nil {
		return 0
	}
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.LazyQuotes = true
	first, _, _ := strings.Cut(text, "\n")
	if strings.Contains(first, "\t") && !strings.Contains(first, ",") {
		cr.Comma = '\t'
	}
	n := -1 // the header
	for {
		rec, err := cr.Read()
		if err == io.EOF || (err != nil && !isFieldCountErr(err)) {
			break
		}
		blank := true
		for _, v := range rec {
			if strings.TrimSpace(v) != "" {
				blank = false
				break
			}
		}
		if !blank || n < 0 {
			n++
		}
		if stopAfter > 0 && n > stopAfter {
			break
		}
	}
	return max(n, 0)
}

func isFieldCountErr(err error) bool {
	pe, ok := err.(*csv.ParseError)
	return ok && pe.Err == csv.ErrFieldCount
}
