package hj212_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/offsite-gw/offsite/ingest/hj212"
)

// benchSegment is a 2011 upload with 8 pollutants, as make bench-hj212 sends.
func benchSegment() string {
	cp := "DataTime=20261203101530"
	for _, c := range []string{"w01018", "w21003", "w01001", "w21011", "w21001", "w00000", "w01010", "w01003"} {
		cp += fmt.Sprintf(";%s-Rtd=12.34,%s-Flag=N", c, c)
	}
	return "QN=20261203101530123;ST=32;CN=2011;PW=123456;MN=41070200000001W0000001;Flag=5;CP=&&" + cp + "&&"
}

// BenchmarkReaderParse: frame cut, CRC, data segment and CP of one 8-pollutant upload.
func BenchmarkReaderParse(b *testing.B) {
	var stream []byte
	for range 256 {
		stream = hj212.AppendFrame(stream, []byte(benchSegment()))
	}
	b.SetBytes(int64(len(stream) / 256))
	var ps []hj212.Pollutant
	r := bytes.NewReader(stream)
	fr := hj212.NewReader(r, 0)
	for b.Loop() {
		d, err := fr.Next()
		if err != nil {
			r.Reset(stream)
			fr = hj212.NewReader(r, 0)
			continue
		}
		s, err := hj212.ParseSegment(d)
		if err != nil {
			b.Fatal(err)
		}
		data, err := hj212.ParseCP(s.CP, ps)
		if err != nil {
			b.Fatal(err)
		}
		ps = data.Pollutants
	}
}

func BenchmarkCRC(b *testing.B) {
	d := []byte(benchSegment())
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		hj212.CRC(d)
	}
}
