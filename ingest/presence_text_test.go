package ingest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

// What a person reads about presence is Chinese; the English reason stays for the detail.
func TestExplainPresence(t *testing.T) {
	for in, want := range map[string]string{
		"no data for 5m3s (heartbeat 2m0s)":                          "已 5 分 3 秒 未收到数据（心跳周期 2 分）",
		"no data since watching started 1h0m1s ago (heartbeat 5m0s)": "开始监测 1 小时 1 秒 以来从未收到数据（心跳周期 5 分）",
		"data received": "数据正常",
		"status topic: offline (will or clean disconnect)": "设备与网关的连接已断开",
		"status topic: online":                             "设备报告在线",
		"":                                                 "",
		"something new":                                    "状态变化",
	} {
		require.Equal(t, want, ingest.ExplainPresence(in), in)
	}
}
