package hj212

// CRC returns the HJ 212-2017 CRC-16 of data (the data segment, without `##`, the length and
// the CRC itself). The standard's register update is not MODBUS's: the byte goes into the
// register after shifting it right by 8, then 8 rounds of shift-right with XOR 0xA001 when
// the bit shifted out was 1 (docs/contracts.md §8).
func CRC(data []byte) uint16 {
	reg := uint16(0xFFFF)
	for _, b := range data {
		// (reg >> 8) ^ b has an empty high byte, so the 8 rounds depend on 8 bits only: a
		// table of 256 entries does them at once.
		reg = crcTable[byte(reg>>8)^b]
	}
	return reg
}

// crcTable[v] is v after the standard's 8 rounds of shift-right and XOR 0xA001.
var crcTable = func() (t [256]uint16) {
	for v := range t {
		reg := uint16(v)
		for range 8 {
			out := reg & 1
			reg >>= 1
			if out != 0 {
				reg ^= 0xA001
			}
		}
		t[v] = reg
	}
	return t
}()

const hexDigits = "0123456789ABCDEF"

// appendCRC appends the 4 upper-case hex digits of c.
func appendCRC(dst []byte, c uint16) []byte {
	return append(dst, hexDigits[c>>12], hexDigits[c>>8&0xF], hexDigits[c>>4&0xF], hexDigits[c&0xF])
}

// parseCRC reads 4 hex digits (either case).
func parseCRC(b []byte) (uint16, bool) {
	if len(b) != 4 {
		return 0, false
	}
	var v uint16
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(d)
	}
	return v, true
}

// AppendFrame appends the frame carrying data: `##`, the 4-digit length, data, the CRC and
// CR LF. data must be at most 9999 bytes.
func AppendFrame(dst, data []byte) []byte {
	n := len(data)
	dst = append(dst, '#', '#', byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
	dst = append(dst, data...)
	dst = appendCRC(dst, CRC(data))
	return append(dst, '\r', '\n')
}
