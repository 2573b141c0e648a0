package ingest

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/stretchr/testify/require"
)

func TestAppendLines(t *testing.T) {
	at := time.Unix(1764210904, 123456789)
	recv := time.UnixMilli(1764210905000)
	r := func(dev, metric string, v float64, q Quality) Reading {
		return Reading{Device: dev, Metric: metric, Value: v, Quality: q, Time: at, ReceiveTime: recv}
	}
	for _, tc := range []struct {
		name string
		recv bool
		rs   []Reading
		want string
	}{
		{"one message is one point", false, []Reading{r("d1", "pm25", 35.5, QualityGood), r("d1", "pm10", 88, QualityGood)},
			"m,device=d1 pm25=35.5,pm10=88 1764210904123456789\n"},
		{"quality tag unless good", false, []Reading{r("d1", "t", -1.25, QualityLate), r("d2", "t", 1e21, QualityReceiveTime)},
			"m,device=d1,quality=late t=-1.25 1764210904123456789\nm,device=d2,quality=receive_time t=1e+21 1764210904123456789\n"},
		{"escaping", false, []Reading{r("a b,c=d\\e\nf", "x y", 1, "")},
			"m,device=a\\ b\\,c\\=d\\\\e\\nf x\\ y=1 1764210904123456789\n"},
		{"not finite values skipped", false, []Reading{r("d1", "a", math.NaN(), ""), r("d1", "b", 2, "")},
			"m,device=d1 b=2 1764210904123456789\n"},
		{"a point with nothing finite is left out", false, []Reading{r("d1", "a", math.Inf(1), ""), r("d2", "b", 3, "")},
			"m,device=d2 b=3 1764210904123456789\n"},
		{"receive time field", true, []Reading{r("d1", "a", 1, "")},
			"m,device=d1 a=1,recv_ms=1764210905000i 1764210904123456789\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, times := appendLines([]byte("keep\n"), nil, "m", tc.recv, tc.rs, true)
			require.Equal(t, "keep\n"+tc.want, string(b))
			require.Len(t, times, strings.Count(tc.want, "\n"))
		})
	}
}

// The write request is the v2 endpoint with org, bucket and nanosecond precision, token auth,
// the line protocol as the body; a non-2xx answer is an error carrying InfluxDB's message, as
// 1.8 gives it (X-Influxdb-Error, with {"error": …} in the body) and as 2.x does ({"code": …,
// "message": …}).
func TestInfluxWriteRequest(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies []string
	fail := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got, bodies = append(got, r), append(bodies, string(b))
		switch fail {
		case 1:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Influxdb-Error", "engine: cache-max-memory-size exceeded")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"engine: cache-max-memory-size exceeded"}`)
			return
		case 2:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"code":"internal error","message":"unexpected error writing points to database: timeout"}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := &InfluxStore{URL: srv.URL + "/", Org: "o", Bucket: "db/rp", Token: "u:p", SpoolDir: t.TempDir()}
	require.NoError(t, s.Initialize())
	defer s.Close()
	lines := []byte("m,device=d1 a=1 1\n")
	err := s.send([][]byte{lines}, 1)
	require.ErrorContains(t, err, "503 Service Unavailable") // retried later (a 400 is not: TestInfluxRefusedWriteIsKeptAndSkipped)
	require.ErrorContains(t, err, "cache-max-memory-size")
	mu.Lock()
	fail = 2
	mu.Unlock()
	err = s.send([][]byte{lines}, 1)
	require.ErrorContains(t, err, "500 Internal Server Error")
	require.ErrorContains(t, err, "writing points to database: timeout")
	mu.Lock()
	fail = 0
	mu.Unlock()
	require.NoError(t, s.send([][]byte{lines}, 1))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 3)
	r := got[2]
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/api/v2/write", r.URL.Path)
	require.Equal(t, "o", r.URL.Query().Get("org"))
	require.Equal(t, "db/rp", r.URL.Query().Get("bucket"))
	require.Equal(t, "ns", r.URL.Query().Get("precision"))
	require.Equal(t, "Token u:p", r.Header.Get("Authorization"))
	require.Equal(t, string(lines), bodies[2])
}

// Write batches: once maxChunksPerWrite chunks are full they go together at once, in the order
// written; the rest waits for FlushInterval or Flush.
func TestInfluxWriteBatches(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	var stored, points atomic.Int64
	s := &InfluxStore{URL: srv.URL, Bucket: "b", SpoolDir: t.TempDir(), BatchSize: 10, FlushInterval: time.Hour,
		OnStored: func(n int, replayed bool, times []int64) { stored.Add(int64(n)); points.Add(int64(len(times))) }}
	require.NoError(t, s.Initialize())
	defer s.Close()
	at := time.Unix(100, 0)
	for i := range 45 {
		// Two readings a message.
		s.Write([]Reading{{Device: "d", Metric: "a", Value: float64(i), Time: at.Add(time.Duration(i))},
			{Device: "d", Metric: "b", Value: 1, Time: at.Add(time.Duration(i))}})
	}
	lines := func() int { mu.Lock(); defer mu.Unlock(); return strings.Count(strings.Join(bodies, ""), "\n") }
	require.Eventually(t, func() bool { return lines() == 40 }, 5*time.Second, time.Millisecond,
		"eight full chunks of ten readings go without waiting for FlushInterval")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 2, "the eight full chunks in one request, the rest at Flush")
	require.Equal(t, 40, strings.Count(bodies[0], "\n"))
	all := strings.Join(bodies, "")
	require.Equal(t, 45, strings.Count(all, "\n"))
	require.True(t, strings.HasPrefix(all, "reading,device=d a=0,b=1 100000000000\n"))
	require.True(t, strings.HasSuffix(all, "reading,device=d a=44,b=1 100000000044\n"))
	require.EqualValues(t, 90, stored.Load())
	require.EqualValues(t, 45, points.Load())
}

// While a write runs, the full chunks that pile up go in the next requests, maxChunksPerWrite
// of them each; what is left at Flush goes too.
func TestInfluxWriteMergesBacklog(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var perRequest []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		first := len(perRequest) == 0
		perRequest = append(perRequest, strings.Count(string(b), "\n"))
		mu.Unlock()
		if first {
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := &InfluxStore{URL: srv.URL, Bucket: "b", SpoolDir: t.TempDir(), BatchSize: 10, FlushInterval: time.Hour}
	require.NoError(t, s.Initialize())
	defer s.Close()
	at := time.Unix(100, 0)
	write := func(i int) { s.Write([]Reading{{Device: "d", Metric: "a", Value: 1, Time: at.Add(time.Duration(i))}}) }
	for i := range 80 {
		write(i)
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(perRequest) == 1 }, 5*time.Second, time.Millisecond)
	for i := 80; i < 80+20*10; i++ {
		write(i) // 20 more chunks while the first write hangs
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{80, 80, 80, 40}, perRequest)
}

// FuzzAppendFloat: every finite value is written so that InfluxDB's parse (strconv) gives it
// back bit for bit.
func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, math.Copysign(0, -1), 35.5, -12.25, 150, 0.05, 2.1, 1e-7, 123456789.123456, 999999999.5, 1e9, 1e21, 0.1 + 0.2, -0.000001} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		s := string(appendFloat(nil, v))
		got, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(got) != math.Float64bits(v) {
			t.Fatalf("%v written as %q reads back as %v (%v)", v, s, got, err)
		}
		if strings.HasSuffix(s, ".") || strings.HasPrefix(strings.TrimPrefix(s, "-"), ".") {
			t.Fatalf("%v written as %q", v, s)
		}
	})
}

// What appendLines writes, line-protocol/v2's Decoder (the library's reading of the format)
// reads back: measurement, tags, every finite value bit for bit, the receive time and the
// timestamp. Device ids and metric names are what devices and profiles allow.
func TestAppendLinesReadsBackWithLineProtocol(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rs []Reading
	at := time.Unix(1764210904, 123456789)
	for i := range 500 {
		v := []float64{rng.NormFloat64() * 100, math.Round(rng.Float64()*1e4) / 100, float64(rng.IntN(2000) - 1000), rng.ExpFloat64() * 1e-6, 1e21 * rng.Float64()}[i%5]
		q := []Quality{QualityGood, QualityLate, ""}[i%3]
		dev := fmt.Sprintf("dev-%d.site_%d", i/8, i%3)
		rs = append(rs, Reading{Device: dev, Metric: fmt.Sprintf("m_%d", i%8), Value: v, Quality: q,
			Time: at.Add(time.Duration(i/8) * time.Microsecond), ReceiveTime: at.Add(time.Second)})
	}
	b, _ := appendLines(nil, nil, "reading", true, rs, false)
	dec := lineprotocol.NewDecoderWithBytes(b)
	i := 0
	for dec.Next() {
		m, err := dec.Measurement()
		require.NoError(t, err)
		require.Equal(t, "reading", string(m))
		r := rs[i]
		tags := map[string]string{}
		for {
			k, v, err := dec.NextTag()
			require.NoError(t, err)
			if k == nil {
				break
			}
			tags[string(k)] = string(v)
		}
		want := map[string]string{"device": r.Device}
		if r.Quality != "" && r.Quality != QualityGood {
			want["quality"] = string(r.Quality)
		}
		require.Equal(t, want, tags)
		for {
			k, v, err := dec.NextField()
			require.NoError(t, err)
			if k == nil {
				break
			}
			if string(k) == "recv_ms" {
				require.Equal(t, r.ReceiveTime.UnixMilli(), v.IntV())
				continue
			}
			require.Equal(t, rs[i].Device, r.Device, "one point per message")
			require.Equal(t, rs[i].Metric, string(k))
			require.Equal(t, math.Float64bits(rs[i].Value), math.Float64bits(v.FloatV()), "%v", rs[i].Value)
			i++
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		require.NoError(t, err)
		require.True(t, ts.Equal(r.Time))
	}
	require.NoError(t, dec.Err())
	require.Equal(t, len(rs), i)
}
