package uplink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/events/event"
)

// Kinds of uplink: the contract's batch endpoint, or a webhook flavour.
const (
	KindOffsite  = "offsite"  // POST {base_url}/offsite/v1/events:batch, docs/contracts.md §6
	KindCentre   = "centre"   // an offsite uplink to this site's centre, which also gets the inventory (§7)
	KindWebhook  = "webhook"  // POST {url}, same body and signature headers; any 2xx = delivered
	KindDingTalk = "dingtalk" // DingTalk group robot, markdown message, optional sign secret
	KindWeCom    = "wecom"    // WeCom (企业微信) group robot, markdown message
)

// protocol turns a batch into a request and the answer into a verdict.
type protocol interface {
	request(ctx context.Context, u *Uplink, evs []event.Event, now time.Time) (*http.Request, error)
	// verdict returns the rejected events, or an error when the batch must be retried.
	verdict(resp *http.Response, body []byte, evs []event.Event) ([]Rejection, error)
}

func protocolFor(kind string) protocol {
	switch kind {
	case KindWebhook:
		return webhookProto{}
	case KindDingTalk:
		return robotProto{dingtalk: true}
	case KindWeCom:
		return robotProto{}
	}
	// KindOffsite and KindCentre
	return offsiteProto{}
}

// EncodeBatch builds the contract body {"gateway_id", "events": [...]} from the events' stored
// bytes, so the same event is always sent with the same content.
func EncodeBatch(gatewayID string, evs []event.Event) []byte {
	gid, _ := json.Marshal(gatewayID)
	n := 32 + len(gid)
	for _, e := range evs {
		n += len(e.Raw) + 1
	}
	b := bytes.NewBuffer(make([]byte, 0, n))
	b.WriteString(`{"gateway_id":`)
	b.Write(gid)
	b.WriteString(`,"events":[`)
	for i, e := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e.Raw)
	}
	b.WriteString("]}")
	return b.Bytes()
}

type offsiteProto struct{}

func (offsiteProto) request(ctx context.Context, u *Uplink, evs []event.Event, now time.Time) (*http.Request, error) {
	body := EncodeBatch(u.GatewayID, evs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(u.BaseURL, "/")+"/offsite/v1/events:batch", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if u.Kind == KindCentre {
		u.mu.Lock()
		backlog := u.backlogHint
		u.mu.Unlock()
		req.Header.Set(HeaderBacklog, strconv.FormatInt(backlog, 10))
		if u.Version != "" {
			req.Header.Set(HeaderVersion, u.Version)
		}
	}
	return req, SignRequest(req, u.GatewayID, u.Alg, u.secret, now, body)
}

func (offsiteProto) verdict(resp *http.Response, body []byte, evs []event.Event) ([]Rejection, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("receiver answered %s: %s", resp.Status, snippet(body))
	}
	r, err := ParseBatchResponse(body)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	_, rejected, missing := r.Outcome(ids)
	if len(missing) > 0 {
		return nil, fmt.Errorf("receiver did not answer for %d of %d events (first %s)", len(missing), len(ids), missing[0])
	}
	return rejected, nil
}

type webhookProto struct{}

func (webhookProto) request(ctx context.Context, u *Uplink, evs []event.Event, now time.Time) (*http.Request, error) {
	body := EncodeBatch(u.GatewayID, evs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if len(u.secret) > 0 {
		return req, SignRequest(req, u.GatewayID, u.Alg, u.secret, now, body)
	}
	return req, nil
}

func (webhookProto) verdict(resp *http.Response, body []byte, _ []event.Event) ([]Rejection, error) {
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("webhook answered %s: %s", resp.Status, snippet(body))
	}
	return nil, nil
}

// robotProto speaks the DingTalk and WeCom group-robot APIs: one markdown message per batch.
type robotProto struct{ dingtalk bool }

// DingTalkSign returns the sign query value: base64(HMAC-SHA256(secret, timestamp+"\n"+secret)).
func DingTalkSign(secret string, timestampMs int64) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestampMs, 10) + "\n" + secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (p robotProto) request(ctx context.Context, u *Uplink, evs []event.Event, now time.Time) (*http.Request, error) {
	title, text := Markdown(evs, 3800)
	var msg any
	target := u.URL
	if p.dingtalk {
		msg = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": title, "text": text}}
		if len(u.secret) > 0 {
			ts := now.UnixMilli()
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			target += sep + "timestamp=" + strconv.FormatInt(ts, 10) + "&sign=" + url.QueryEscape(DingTalkSign(string(u.secret), ts))
		}
	} else {
		msg = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": text}}
	}
	body, _ := json.Marshal(msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

func (p robotProto) verdict(resp *http.Response, body []byte, _ []event.Event) ([]Rejection, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("robot answered %s: %s", resp.Status, snippet(body))
	}
	var r struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.ErrCode == nil {
		return nil, fmt.Errorf("robot answer is not {errcode, errmsg}: %s", snippet(body))
	}
	if *r.ErrCode != 0 {
		return nil, fmt.Errorf("robot errcode %d: %s", *r.ErrCode, r.ErrMsg)
	}
	return nil, nil
}

var severityLabel = map[string]string{"info": "提示", "minor": "一般", "major": "重要", "critical": "紧急"}

// Markdown renders events as one robot message, at most maxBytes of text.
func Markdown(evs []event.Event, maxBytes int) (title, text string) {
	title = fmt.Sprintf("非现场监管：%d 条事件", len(evs))
	if len(evs) == 1 {
		title = "非现场监管：" + evs[0].Type
	}
	var b strings.Builder
	for i, e := range evs {
		var one strings.Builder
		sev := severityLabel[e.Severity]
		if sev == "" {
			sev = e.Severity
		}
		fmt.Fprintf(&one, "### 【%s】%s\n", sev, e.Type)
		if e.Message != "" {
			fmt.Fprintf(&one, "%s\n\n", e.Message)
		}
		if e.Site != nil {
			fmt.Fprintf(&one, "- 监管对象：%s（%s）\n", e.Site.Name, e.Site.RegionCode)
		}
		if e.Department != "" {
			fmt.Fprintf(&one, "- 部门：%s\n", e.Department)
		}
		if e.Reading != nil {
			fmt.Fprintf(&one, "- 读数：%s = %g %s\n", e.Reading.Metric, e.Reading.Value, e.Reading.Unit)
		}
		if e.Alert != nil {
			fmt.Fprintf(&one, "- 告警：%s %s %s\n", e.Alert.ID, e.Alert.State, e.Alert.Actor)
		}
		fmt.Fprintf(&one, "- 时间：%s\n- 事件：%s\n\n", e.OccurredAt.Local().Format("2006-01-02 15:04:05"), e.ID)
		if b.Len()+one.Len() > maxBytes {
			fmt.Fprintf(&b, "……另有 %d 条\n", len(evs)-i)
			break
		}
		b.WriteString(one.String())
	}
	return title, b.String()
}

func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}

func readBody(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, 4<<20))
	return b
}
