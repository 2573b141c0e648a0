package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func get(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (h *harness) serve(t *testing.T) {
	h.srv.Listen = "127.0.0.1:0"
	require.NoError(t, h.srv.Start())
	t.Cleanup(func() { _ = h.srv.Shutdown(t.Context()) })
}

// /metrics names cameras: it can be put behind a token, or on its own address only.
func TestMetricsBehindTokenOrOwnAddress(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	const token = "metrics-token-0123456789"
	h.variant(func(s *api.Server) { s.MetricsToken = token })
	h.serve(t)
	base := "http://" + h.srv.Addr()
	status, body := get(t, http.DefaultClient, base+"/metrics", "")
	require.Equal(t, 401, status)
	require.Contains(t, body, `"unauthenticated"`)
	status, _ = get(t, http.DefaultClient, base+"/metrics", "wrong-token-0123456789")
	require.Equal(t, 401, status)
	status, body = get(t, http.DefaultClient, base+"/metrics", token)
	require.Equal(t, 200, status)
	require.Contains(t, body, "offsite_http_requests_total")

	h2 := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	h2.variant(func(s *api.Server) { s.MetricsListen = "127.0.0.1:0" })
	h2.serve(t)
	status, body = get(t, http.DefaultClient, "http://"+h2.srv.Addr()+"/metrics", "")
	require.Equal(t, 404, status, "not on the API address")
	require.Contains(t, body, "metrics_listen")
	require.NotEmpty(t, h2.srv.MetricsAddr())
	status, body = get(t, http.DefaultClient, "http://"+h2.srv.MetricsAddr()+"/metrics", "")
	require.Equal(t, 200, status)
	require.Contains(t, body, "offsite_http_requests_total")
}

// With a certificate and key the server speaks HTTPS itself.
func TestServesHTTPS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, pool := selfSigned(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, certPEM, 0o600))
	require.NoError(t, os.WriteFile(key, keyPEM, 0o600))

	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	h.variant(func(s *api.Server) { s.TLSCert, s.TLSKey = cert, key })
	h.serve(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	status, body := get(t, client, "https://"+h.srv.Addr()+"/healthz", "")
	require.Equal(t, 200, status, body)
	status, _ = get(t, client, "https://"+h.srv.Addr()+"/api/v1/auth/me", h.admin)
	require.Equal(t, 200, status)

	// Plain HTTP to the TLS port gets no API answer.
	res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + h.srv.Addr() + "/healthz")
	if err == nil {
		res.Body.Close()
		require.NotEqual(t, 200, res.StatusCode)
	}

	// A missing key is a clear error at start.
	h.variant(func(s *api.Server) {
		s.TLSCert, s.TLSKey, s.Listen = cert, filepath.Join(dir, "missing.pem"), "127.0.0.1:0"
	})
	require.ErrorContains(t, h.srv.Start(), "missing.pem")
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "offsite-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kd, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), pool
}
