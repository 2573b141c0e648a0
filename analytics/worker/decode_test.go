package worker_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/analytics/worker"
)

func TestKeyframeDecoder(t *testing.T) {
	clip := makeClip(t, "decode-testsrc", "-f lavfi -i testsrc2=size=1280x720:rate=25 -t 6", "")
	b, err := os.ReadFile(clip)
	require.NoError(t, err)
	kfs, err := worker.Keyframes(b)
	require.NoError(t, err)
	require.Len(t, kfs, 3, "6 s at a keyframe every 2 s")
	d, err := worker.NewKeyframeDecoder()
	require.NoError(t, err)
	defer d.Close()
	var prev []byte
	for i, kf := range kfs {
		start := time.Now()
		pic, err := d.Decode(kf)
		require.NoError(t, err, "keyframe %d", i)
		require.Equal(t, 1280, pic.Width)
		require.Equal(t, 720, pic.Height)
		t.Logf("keyframe %d decoded in %v", i, time.Since(start))
		if prev != nil {
			require.NotEqual(t, prev, pic.Y, "each keyframe is a new picture")
		}
		prev = append([]byte(nil), pic.Y...)
	}
	// SPS/PPS from the SDP only (as the demo cameras send them).
	d2, err := worker.NewKeyframeDecoder()
	require.NoError(t, err)
	defer d2.Close()
	d2.SetParams(kfs[0][0], kfs[0][1])
	_, err = d2.Decode(kfs[1][2:])
	require.NoError(t, err)
	_, err = d2.Decode(nil)
	require.Error(t, err)
}
