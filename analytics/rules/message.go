package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Messages are what an officer reads on a phone: who, what, how much, against which limit,
// for how long, then the profile's advice.

type clearReason int

const (
	clearValue   clearReason = iota // the value went back past the limit (and hysteresis)
	clearRate                       // the change slowed down
	clearSilence                    // data arrived again
	clearWindow                     // the rule's window or schedule ended
	clearRemoved                    // the rule was disabled or removed
)

var opWords = map[string]string{
	">": "超过", ">=": "达到", "<": "低于", "<=": "不高于", "==": "等于", "!=": "不等于",
}

func (dr *deviceRules) who() string {
	if dr == nil {
		return ""
	}
	var parts []string
	if dr.site != nil && dr.site.Name != "" {
		parts = append(parts, dr.site.Name)
	}
	if dr.dev.Name != "" {
		parts = append(parts, dr.dev.Name)
	}
	if len(parts) == 0 {
		parts = append(parts, "设备 "+dr.dev.ID)
	}
	return strings.Join(parts, " ")
}

func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

func qty(v float64, unit string) string {
	if unit == "" {
		return num(v)
	}
	return num(v) + " " + unit
}

// zhDuration writes 10 分钟, 1 小时 30 分钟, 45 秒.
func zhDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d 秒", int(d.Seconds()))
	}
	d = d.Truncate(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	switch {
	case h == 0:
		return fmt.Sprintf("%d 分钟", m)
	case m == 0:
		return fmt.Sprintf("%d 小时", h)
	}
	return fmt.Sprintf("%d 小时 %d 分钟", h, m)
}

func withAdvice(fact, advice string) string {
	if advice == "" {
		return fact
	}
	return fact + "。" + advice
}

// crossed says how v stands to the rule's limit without contradicting the numbers: a reading
// of 35 against ">= 20" 超过 the limit, one of exactly 20 达到 it; the limit is named 高限 or
// 低限 when the metric has two limits on the same side ("35 %LEL，超过高限 20 %LEL").
func (r *rule) crossed(v float64, unit string) string {
	word := opWords[r.op]
	if (r.op == ">" || r.op == ">=") && v > r.value {
		word = "超过"
	}
	return word + r.limitName + " " + qty(r.value, unit)
}

func (e *Engine) activeMessage(dr *deviceRules, r *rule, st *ruleState, at, since time.Time, v, delta float64) string {
	who := dr.who()
	switch r.kind {
	case KindThreshold:
		return withAdvice(fmt.Sprintf("%s %s %s，%s", who, r.label, qty(v, st.unit), r.crossed(v, st.unit)), r.message)
	case KindDuration:
		held := r.forDur
		if !since.IsZero() && at.Sub(since) > held {
			held = at.Sub(since)
		}
		return withAdvice(fmt.Sprintf("%s %s %s，%s 已持续 %s", who, r.label, qty(v, st.unit), r.crossed(v, st.unit),
			zhDuration(held)), r.message)
	case KindRate:
		dir := "变化"
		switch r.op {
		case ">", ">=":
			dir = "上升"
		case "<", "<=":
			dir = "下降"
		}
		return withAdvice(fmt.Sprintf("%s %s %s 内%s %s（现为 %s），超过 %s", who, r.label, zhDuration(r.per), dir,
			qty(math.Abs(delta), st.unit), qty(v, st.unit), qty(math.Abs(r.value), st.unit)), r.message)
	case KindSilence:
		what := "数据"
		if r.metric != "" {
			what = r.label + " 数据"
		}
		return withAdvice(fmt.Sprintf("%s 已 %s 无%s（最后一次 %s）", who, zhDuration(r.forDur), what,
			st.LastAt.In(e.loc).Format("01-02 15:04")), r.message)
	}
	return who
}

func (e *Engine) clearMessage(dr *deviceRules, r *rule, st *ruleState, why clearReason, v float64) string {
	who := dr.who()
	switch why {
	case clearValue:
		return fmt.Sprintf("%s %s 恢复至 %s（限值 %s），告警解除", who, r.label, qty(v, st.unit), qty(r.value, st.unit))
	case clearRate:
		return fmt.Sprintf("%s %s 变化恢复平稳（现为 %s），告警解除", who, r.label, qty(v, st.unit))
	case clearSilence:
		return fmt.Sprintf("%s 恢复上报数据，告警解除", who)
	case clearWindow:
		text := ""
		if r.gate != nil {
			text = "（" + r.gate.text + "）"
		}
		return fmt.Sprintf("%s %s告警规则的监测时段%s已结束，告警解除", who, r.label, text)
	}
	return fmt.Sprintf("%s %s告警规则已停用或删除，告警解除", who, r.label)
}
