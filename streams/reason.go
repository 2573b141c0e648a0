package streams

import "strings"

// ExplainReason turns a source's technical reason (CameraStatus.Reason, the reason passed to
// Manager.OnState) into a code a user interface translates and a Chinese sentence for event
// messages, so a person reads "the camera refuses connections" rather than "describe: bad status
// code: 503". Codes: auth_failed, camera_refused, camera_unreachable, no_data, stream_lost,
// signal_lost; "" for no reason.
func ExplainReason(reason string) (code, text string) {
	r := strings.ToLower(reason)
	switch {
	case reason == "":
		return "", ""
	case strings.Contains(r, "401") || strings.Contains(r, "unauthorized") || strings.Contains(r, "auth"):
		return "auth_failed", "摄像机拒绝登录，请核对设备档案中的用户名和密码"
	case strings.Contains(r, "503") || strings.Contains(r, "bad status code"):
		return "camera_refused", "摄像机拒绝取流，可能正在重启或连接数已满"
	case strings.Contains(r, "connection refused") || strings.Contains(r, "no route") || strings.Contains(r, "i/o timeout") || strings.Contains(r, "dial"):
		return "camera_unreachable", "无法连接摄像机，请检查网络或供电"
	case strings.Contains(r, "no packets") || strings.Contains(r, "stall"):
		return "no_data", "摄像机已连接但没有画面数据"
	case strings.Contains(r, "eof") || strings.Contains(r, "reset") || strings.Contains(r, "lost") || strings.Contains(r, "closed"):
		return "stream_lost", "视频流被摄像机中断"
	}
	return "signal_lost", "视频信号中断"
}
