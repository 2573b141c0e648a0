package hj212

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Commands (CN) this package names; others pass through as numbers.
const (
	CNRealtime     = 2011 // 实时数据
	CNMinute       = 2051 // 分钟数据
	CNHour         = 2061 // 小时数据
	CNDay          = 2031 // 日历史数据
	CNRunTimeDay   = 2041 // 设备运行时间日历史数据
	CNRestart      = 2081 // 数采仪开机时间
	CNSetTime      = 1012 // 设置现场机时间 (platform → station)
	CNTimeRequest  = 1013 // 现场机时间校准请求 (station → platform)
	CNRequestReply = 9011 // 请求应答
	CNResult       = 9012 // 执行结果
	CNDataAck      = 9014 // 数据应答
)

// STSystem is the system code of interaction commands (系统交互).
const STSystem = "91"

// Flag bits (HJ 212-2017 §6.3.3: V5..V0 D A). HJ/T 212-2005 uses the same two low bits with
// version 0.
const (
	FlagAnswer  = 1 // A: the sender wants an answer
	FlagSplit   = 2 // D: the packet carries PNUM and PNO
	Version2005 = 0
	Version2017 = 1
)

// Beijing is UTC+8, the zone of QN, DataTime and SystemTime.
var Beijing = time.FixedZone("CST", 8*3600)

// Segment is a parsed data segment. CP is the text between `CP=&&` and the closing `&&`.
type Segment struct {
	QN      string
	ST      string
	CN      int
	PW      string
	MN      string
	Flag    int
	HasFlag bool // 2005 loggers often leave Flag out
	PNUM    int  // total packets of a split upload (0 when not split)
	PNO     int  // this packet's number, from 1
	CP      string
}

// Version is the protocol version in Flag: Version2005 or Version2017.
func (s Segment) Version() int { return s.Flag >> 2 }

// WantsAnswer reports whether the sender asked for an answer (Flag bit A).
func (s Segment) WantsAnswer() bool { return s.Flag&FlagAnswer != 0 }

// SegmentError is why a data segment was refused.
type SegmentError struct {
	Reason string // malformed_segment, bad_time, bad_value
	Msg    string
}

func (e *SegmentError) Error() string { return e.Reason + ": " + e.Msg }

// Reasons of SegmentError.
const (
	ReasonMalformed = "malformed_segment"
	ReasonBadTime   = "bad_time"
	ReasonBadValue  = "bad_value"
)

func malformed(format string, args ...any) error {
	return &SegmentError{Reason: ReasonMalformed, Msg: fmt.Sprintf(format, args...)}
}

// ParseSegment parses a data segment: `key=value` fields separated by `;`, CP last.
func ParseSegment(data []byte) (Segment, error) {
	var s Segment
	str := string(data)
	i := strings.Index(str, "CP=&&")
	if i < 0 {
		return s, malformed("no CP=&&…&& field")
	}
	if i > 0 && str[i-1] != ';' {
		return s, malformed("CP must be a field of its own, after ';'")
	}
	cp := str[i+len("CP=&&"):]
	j := strings.LastIndex(cp, "&&")
	if j < 0 {
		return s, malformed("CP is not closed with &&")
	}
	if rest := strings.TrimRight(cp[j+2:], ";"); rest != "" {
		return s, malformed("%d bytes after the end of CP", len(rest))
	}
	s.CP = cp[:j]
	head := str[:i]
	seen := 0
	for head != "" {
		var f string
		f, head, _ = strings.Cut(head, ";")
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return s, malformed("field %q has no '='", clip(f))
		}
		bit := 0
		switch k {
		case "QN":
			bit = 1
			if len(v) > 20 || !digits(v) {
				return s, malformed("QN %q must be at most 20 digits (YYYYMMDDhhmmsszzz)", clip(v))
			}
			s.QN = v
		case "ST":
			bit = 2
			if len(v) == 0 || len(v) > 5 || !digits(v) {
				return s, malformed("ST %q must be a number of up to 5 digits", clip(v))
			}
			s.ST = v
		case "CN":
			bit = 4
			n, ok := number(v, 7)
			if !ok {
				return s, malformed("CN %q must be a number of up to 7 digits", clip(v))
			}
			s.CN = n
		case "PW":
			bit = 8
			if len(v) > 64 {
				return s, malformed("PW longer than 64 characters")
			}
			s.PW = v
		case "MN":
			bit = 16
			if len(v) == 0 || len(v) > 27 || !alnum(v) {
				return s, malformed("MN %q must be 1 to 27 letters or digits", clip(v))
			}
			s.MN = v
		case "Flag":
			bit = 32
			n, ok := number(v, 3)
			if !ok || n > 255 {
				return s, malformed("Flag %q must be a number 0-255", clip(v))
			}
			s.Flag, s.HasFlag = n, true
		case "PNUM":
			bit = 64
			n, ok := number(v, 4)
			if !ok || n == 0 {
				return s, malformed("PNUM %q must be a number 1-9999", clip(v))
			}
			s.PNUM = n
		case "PNO":
			bit = 128
			n, ok := number(v, 4)
			if !ok || n == 0 {
				return s, malformed("PNO %q must be a number 1-9999", clip(v))
			}
			s.PNO = n
		default:
			// Fields a later revision may add are ignored, not refused.
			continue
		}
		if seen&bit != 0 {
			return s, malformed("field %s given twice", k)
		}
		seen |= bit
	}
	switch {
	case seen&4 == 0:
		return s, malformed("no CN field")
	case seen&16 == 0:
		return s, malformed("no MN field")
	case (s.PNUM == 0) != (s.PNO == 0):
		return s, malformed("PNUM and PNO come together")
	case s.PNO > s.PNUM:
		return s, malformed("PNO %d is past PNUM %d", s.PNO, s.PNUM)
	}
	return s, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func number(s string, maxDigits int) (int, bool) {
	if len(s) == 0 || len(s) > maxDigits || !digits(s) {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, true
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// AppendSegment appends the data segment of s: QN, ST, CN, PW, MN, Flag, PNUM/PNO (when
// split), CP. Empty QN and ST are left out.
func AppendSegment(dst []byte, s Segment) []byte {
	if s.QN != "" {
		dst = append(dst, "QN="...)
		dst = append(dst, s.QN...)
		dst = append(dst, ';')
	}
	if s.ST != "" {
		dst = append(dst, "ST="...)
		dst = append(dst, s.ST...)
		dst = append(dst, ';')
	}
	dst = append(dst, "CN="...)
	dst = strconv.AppendInt(dst, int64(s.CN), 10)
	dst = append(dst, ";PW="...)
	dst = append(dst, s.PW...)
	dst = append(dst, ";MN="...)
	dst = append(dst, s.MN...)
	if s.HasFlag {
		dst = append(dst, ";Flag="...)
		dst = strconv.AppendInt(dst, int64(s.Flag), 10)
	}
	if s.PNUM > 0 {
		dst = append(dst, ";PNUM="...)
		dst = strconv.AppendInt(dst, int64(s.PNUM), 10)
		dst = append(dst, ";PNO="...)
		dst = strconv.AppendInt(dst, int64(s.PNO), 10)
	}
	dst = append(dst, ";CP=&&"...)
	dst = append(dst, s.CP...)
	return append(dst, "&&"...)
}

// QN formats t as a request number (YYYYMMDDhhmmsszzz, Beijing time).
func QN(t time.Time) string {
	t = t.In(Beijing)
	return t.Format("20060102150405") + fmt.Sprintf("%03d", t.Nanosecond()/1e6)
}

// FormatTime formats t as DataTime / SystemTime (YYYYMMDDhhmmss, Beijing time).
func FormatTime(t time.Time) string { return t.In(Beijing).Format("20060102150405") }

// ParseTime reads a DataTime / SystemTime (YYYYMMDDhhmmss, Beijing time).
func ParseTime(s string) (time.Time, error) {
	if len(s) != 14 || !digits(s) {
		return time.Time{}, &SegmentError{Reason: ReasonBadTime, Msg: fmt.Sprintf("time %q must be YYYYMMDDhhmmss", clip(s))}
	}
	t, err := time.ParseInLocation("20060102150405", s, Beijing)
	if err != nil {
		return time.Time{}, &SegmentError{Reason: ReasonBadTime, Msg: fmt.Sprintf("time %q is not a valid date and time", s)}
	}
	return t, nil
}

// Answer builds the data segment of the platform's answer to s: CN 9014 (数据应答) with the
// same QN, PW and MN, in the station's protocol version, asking for no answer back.
func Answer(s Segment) Segment {
	return Segment{QN: s.QN, ST: STSystem, CN: CNDataAck, PW: s.PW, MN: s.MN, Flag: s.Version() << 2, HasFlag: true}
}

// SetTime builds the time-calibration command (CN 1012) for the station of s, setting its
// clock to now; the station answers with 9011/9012.
func SetTime(s Segment, now time.Time) Segment {
	return Segment{QN: QN(now), ST: s.ST, CN: CNSetTime, PW: s.PW, MN: s.MN, Flag: s.Version()<<2 | FlagAnswer, HasFlag: true,
		CP: "SystemTime=" + FormatTime(now)}
}
