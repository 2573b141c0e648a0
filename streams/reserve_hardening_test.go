package streams_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// reserveFixture is a relay with one demo camera and a re-serve in front of it.
func reserveFixture(t *testing.T, tune func(rs *streams.Reserve)) *streams.Reserve {
	t.Helper()
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "waiting-area")}}})
	r := newRelay(t, nil)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam1", URL: sim.URL("c")}))
	rs := &streams.Reserve{Manager: r.m, Listen: "127.0.0.1:0", Username: "worker", Password: "w0rk3r", Logger: quietLogger()}
	if tune != nil {
		tune(rs)
	}
	require.NoError(t, rs.Initialize())
	t.Cleanup(rs.Close)
	return rs
}

func ffprobeURL(t *testing.T, url string) error {
	ffprobe := need(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_name", "-of", "csv", url).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if !strings.Contains(string(out), "h264") {
		return fmt.Errorf("no h264 stream: %s", out)
	}
	return nil
}

// rtspRequest sends one raw RTSP request and returns the status line and headers.
func rtspRequest(t *testing.T, addr, method, url string, extra ...string) (string, textproto.MIMEHeader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	req := method + " " + url + " RTSP/1.0\r\nCSeq: 1\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	_, err = c.Write([]byte(req + "\r\n"))
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	tp := textproto.NewReader(bufio.NewReader(c))
	status, err := tp.ReadLine()
	require.NoError(t, err)
	h, err := tp.ReadMIMEHeader()
	require.NoError(t, err)
	return status, h
}

// TestReserveDigestOnly: the re-serve offers Digest only, and refuses a correct login sent
// with Basic (the secret in clear).
func TestReserveDigestOnly(t *testing.T) {
	rs := reserveFixture(t, nil)
	url := "rtsp://" + rs.Addr() + "/cam1"
	status, h := rtspRequest(t, rs.Addr(), "DESCRIBE", url)
	require.Contains(t, status, "401")
	challenges := h.Values("Www-Authenticate")
	require.NotEmpty(t, challenges)
	for _, c := range challenges {
		require.True(t, strings.HasPrefix(c, "Digest "), "challenge %q", c)
	}
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("worker:w0rk3r"))
	status, _ = rtspRequest(t, rs.Addr(), "DESCRIBE", url, basic)
	require.Contains(t, status, "401", "a Basic login was accepted")
	require.NoError(t, ffprobeURL(t, "rtsp://worker:w0rk3r@"+rs.Addr()+"/cam1"), "Digest login")
}

// TestReserveAuthFailuresThrottled: after AuthFailLimit (default 5) failed logins from one
// address, that address is refused even with the right secret, while another address logs in.
func TestReserveAuthFailuresThrottled(t *testing.T) {
	rs := reserveFixture(t, nil)
	for i := range 5 {
		require.Error(t, ffprobeURL(t, "rtsp://worker:guess"+fmt.Sprint(i)+"@"+rs.Addr()+"/cam1"))
	}
	require.Error(t, ffprobeURL(t, "rtsp://worker:w0rk3r@"+rs.Addr()+"/cam1"), "right secret from a throttled address")

	// The same login from 127.0.0.2 (another address) is let in.
	u, err := base.ParseURL("rtsp://worker:w0rk3r@" + rs.Addr() + "/cam1")
	require.NoError(t, err)
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
	require.NoError(t, c.Start2())
	defer c.Close()
	desc, _, err := c.Describe(u)
	require.NoError(t, err)
	require.NotEmpty(t, desc.Medias)
}

// TestReserveConsumers: each consumer has its own Digest login; revoking one ends its logins
// and its open session and leaves the others (and the configured login) working.
func TestReserveConsumers(t *testing.T) {
	db := storetest.SQLite(t, streams.Migrations)
	cs := &streams.ConsumerStore{DB: db, Reserved: []string{"worker"}}
	rs := reserveFixture(t, func(rs *streams.Reserve) {
		rs.Credentials = []streams.CredentialSource{cs}
		rs.AuthFailLimit = -1
	})
	cs.OnRevoke = func(name string) { rs.Disconnect(name) }
	ctx := context.Background()
	_, analytics, err := cs.Create(ctx, "analytics-1", "worker on host A", "admin")
	require.NoError(t, err)
	_, recorder, err := cs.Create(ctx, "recorder-1", "", "admin")
	require.NoError(t, err)
	require.Len(t, analytics, 32)
	_, _, err = cs.Create(ctx, "worker", "", "admin")
	require.Error(t, err, "the configured login's name is reserved")
	_, _, err = cs.Create(ctx, "analytics-1", "", "admin")
	require.Error(t, err, "names are unique")

	addr := rs.Addr()
	require.NoError(t, ffprobeURL(t, "rtsp://analytics-1:"+analytics+"@"+addr+"/cam1"))
	require.NoError(t, ffprobeURL(t, "rtsp://recorder-1:"+recorder+"@"+addr+"/cam1"))
	require.NoError(t, ffprobeURL(t, "rtsp://worker:w0rk3r@"+addr+"/cam1"), "the configured login still works")
	require.Error(t, ffprobeURL(t, "rtsp://analytics-1:"+recorder+"@"+addr+"/cam1"), "another consumer's secret")

	// analytics-1 is playing when it is revoked: its session ends.
	u, err := base.ParseURL("rtsp://analytics-1:" + analytics + "@" + addr + "/cam1")
	require.NoError(t, err)
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	require.NoError(t, c.Start2())
	defer c.Close()
	desc, _, err := c.Describe(u)
	require.NoError(t, err)
	require.NoError(t, c.SetupAll(desc.BaseURL, desc.Medias))
	_, err = c.Play(nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()

	got, err := cs.Revoke(ctx, "analytics-1")
	require.NoError(t, err)
	require.NotNil(t, got.RevokedAt)
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the revoked consumer's session is still open")
	}
	require.Error(t, ffprobeURL(t, "rtsp://analytics-1:"+analytics+"@"+addr+"/cam1"), "revoked login")
	require.NoError(t, ffprobeURL(t, "rtsp://recorder-1:"+recorder+"@"+addr+"/cam1"), "another consumer is untouched")
	require.Equal(t, float64(2), rs.Refused(streams.RTSPRefusedCredentials))

	list, err := cs.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "analytics-1", list[0].Name)
	require.NotNil(t, list[0].RevokedAt)
	require.Nil(t, list[1].RevokedAt)
	_, err = cs.Revoke(ctx, "nobody")
	require.Error(t, err)
}

// TestConsumerStoreBackends runs the consumer table on every database backend.
func TestConsumerStoreBackends(t *testing.T) {
	storetest.Each(t, []store.Migrations{streams.Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cs := &streams.ConsumerStore{DB: db, CacheFor: time.Hour}
		c, secret, err := cs.Create(ctx, "recorder-site-3", "NVR", "admin")
		require.NoError(t, err)
		require.Equal(t, "admin", c.CreatedBy)
		cred, ok, err := cs.RTSPCredential(ctx, "recorder-site-3")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, streams.DigestHA1("recorder-site-3", secret), cred.HA1)
		_, _, err = cs.Create(ctx, "Bad Name", "", "admin")
		require.Error(t, err)
		var revoked []string
		cs.OnRevoke = func(n string) { revoked = append(revoked, n) }
		_, err = cs.Revoke(ctx, "recorder-site-3")
		require.NoError(t, err)
		_, ok, err = cs.RTSPCredential(ctx, "recorder-site-3")
		require.NoError(t, err)
		require.False(t, ok, "a revoked consumer is found (cache not cleared)")
		require.Equal(t, []string{"recorder-site-3"}, revoked)
		_, err = cs.Revoke(ctx, "recorder-site-3")
		require.NoError(t, err, "revoking twice is fine")
		require.Len(t, revoked, 1)
	})
}

// TestReserveIdleAndExcessConnections: a connection that sends no request is closed after
// the handshake timeout, one over the per-address bound at once; ffprobe still reads.
func TestReserveIdleAndExcessConnections(t *testing.T) {
	rs := reserveFixture(t, func(rs *streams.Reserve) {
		rs.HandshakeTimeout = 500 * time.Millisecond
		rs.MaxConnsPerAddr = 3
	})
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := c.Read(make([]byte, 1))
		ne, ok := err.(net.Error)
		return !(ok && ne.Timeout())
	}
	idle, err := net.Dial("tcp", rs.Addr())
	require.NoError(t, err)
	defer idle.Close()
	require.True(t, closed(idle), "an idle connection stayed open")
	require.Equal(t, float64(1), rs.Refused("handshake_idle"))

	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", rs.Addr())
		require.NoError(t, err)
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", rs.Addr())
	require.NoError(t, err)
	defer extra.Close()
	start := time.Now()
	require.True(t, closed(extra))
	require.Equal(t, float64(1), rs.Refused("conn_limit"))
	t.Logf("fourth connection closed after %s", time.Since(start))
	for _, c := range held {
		c.Close()
	}
	require.Eventually(t, func() bool { return ffprobeURL(t, "rtsp://worker:w0rk3r@"+rs.Addr()+"/cam1") == nil },
		30*time.Second, 200*time.Millisecond)
}
