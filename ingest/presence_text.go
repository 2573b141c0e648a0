package ingest

import (
	"fmt"
	"regexp"
	"time"
)

var (
	reNoData      = regexp.MustCompile(`^no data for (\S+) \(heartbeat (\S+)\)$`)
	reNoDataSince = regexp.MustCompile(`^no data since watching started (\S+) ago \(heartbeat (\S+)\)$`)
)

// ExplainPresence turns a presence reason (PresenceChange.Reason, DeviceState.Reason: English,
// for logs and the event's detail) into the Chinese sentence a person reads.
func ExplainPresence(reason string) string {
	if m := reNoData.FindStringSubmatch(reason); m != nil {
		return fmt.Sprintf("已 %s 未收到数据（心跳周期 %s）", zhDur(m[1]), zhDur(m[2]))
	}
	if m := reNoDataSince.FindStringSubmatch(reason); m != nil {
		return fmt.Sprintf("开始监测 %s 以来从未收到数据（心跳周期 %s）", zhDur(m[1]), zhDur(m[2]))
	}
	switch reason {
	case "data received":
		return "数据正常"
	case "status topic: online":
		return "设备报告在线"
	case "status topic: offline (will or clean disconnect)":
		return "设备与网关的连接已断开"
	case "":
		return ""
	}
	return "状态变化"
}

// zhDur writes a Go duration as 1 小时 5 分 3 秒; text that is not a duration stays.
func zhDur(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	d = d.Round(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	out := ""
	if h > 0 {
		out += fmt.Sprintf("%d 小时", h)
	}
	if m > 0 {
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%d 分", m)
	}
	if sec > 0 || out == "" {
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%d 秒", sec)
	}
	return out
}
