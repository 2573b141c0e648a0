package ingest_test

import (
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Behind Mosquitto (2.0): a will on another device's topic is accepted at CONNECT, but its ACL
// keeps the will from being published when the connection drops.
func TestForeignWillBehindMosquitto(t *testing.T) {
	needMosquittoClients(t)
	devs := sensorFleet()
	m := startMosquitto(t, devs)
	addr := "127.0.0.1:" + strconv.Itoa(m.port)
	retained := func(topic string) (string, error) {
		out, err := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(m.port), "-u", gatewayUser, "-P", gatewayPass,
			"-t", topic, "-C", "1", "-W", "3").CombinedOutput()
		return string(out), err
	}
	// The device's own will is published and retained (so the check below can see one).
	c, code, err := rawConnect(t, addr, "own", "dust-1", "secret-dust-1", "offsite/site-1/dust-1/status")
	require.NoError(t, err)
	require.Equal(t, byte(0), code)
	c.Close()
	require.Eventually(t, func() bool {
		out, err := retained("offsite/site-1/dust-1/status")
		return err == nil && out == "offline\n"
	},
		15*time.Second, 100*time.Millisecond)

	c, code, err = rawConnect(t, addr, "attacker", "dust-1", "secret-dust-1", "offsite/site-1/gen-1/status")
	require.NoError(t, err)
	require.Equal(t, byte(0), code, "Mosquitto 2.0 accepts the CONNECT")
	c.Close()
	time.Sleep(time.Second) // the own will above was retained well within this
	out, err := retained("offsite/site-1/gen-1/status")
	require.Error(t, err, "a foreign will was retained: %s", out)
}
