package worker

/*
#cgo pkg-config: libavcodec libavutil
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <string.h>

typedef struct {
	AVCodecContext *ctx;
	AVPacket *pkt;
	AVFrame *frame;
} kfdec;

static kfdec *kfdec_new(char *err, int errlen) {
	const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
	if (!codec) { snprintf(err, errlen, "libavcodec has no H.264 decoder"); return NULL; }
	kfdec *d = calloc(1, sizeof(kfdec));
	d->ctx = avcodec_alloc_context3(codec);
	d->ctx->thread_count = 1;
	d->ctx->flags |= AV_CODEC_FLAG_LOW_DELAY;
	d->ctx->flags2 |= AV_CODEC_FLAG2_FAST;
	// Analytics looks at a downscaled grey picture: the deblocking filter buys nothing there.
	d->ctx->skip_loop_filter = AVDISCARD_ALL;
	int r = avcodec_open2(d->ctx, codec, NULL);
	if (r < 0) { av_strerror(r, err, errlen); avcodec_free_context(&d->ctx); free(d); return NULL; }
	d->pkt = av_packet_alloc();
	d->frame = av_frame_alloc();
	return d;
}

static void kfdec_free(kfdec *d) {
	if (!d) return;
	av_frame_free(&d->frame);
	av_packet_free(&d->pkt);
	avcodec_free_context(&d->ctx);
	free(d);
}

// kfdec_decode decodes one Annex-B access unit. On success it returns 0 and sets *w, *h and
// *y/*stride to the luma plane (valid until the next call).
static int kfdec_decode(kfdec *d, uint8_t *data, int size, int *w, int *h, uint8_t **y, int *stride, char *err, int errlen) {
	d->pkt->data = data;
	d->pkt->size = size;
	int r = avcodec_send_packet(d->ctx, d->pkt);
	if (r < 0) { av_strerror(r, err, errlen); return r; }
	r = avcodec_receive_frame(d->ctx, d->frame);
	if (r < 0) { av_strerror(r, err, errlen); return r; }
	*w = d->frame->width; *h = d->frame->height;
	*y = d->frame->data[0]; *stride = d->frame->linesize[0];
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/offsite-gw/offsite/streams/h264file"
)

// KeyframeDecoder decodes H.264 keyframes, and only keyframes, in process with libavcodec
// (single thread, low delay, no deblocking) and hands back the luma plane — the grey picture
// the detectors want, with no colour conversion. Fed IDR access units only, it never touches
// the P-frames between them: at a keyframe every 1-2 s that is one decode per look instead of
// 25-50, and since each IDR stands alone the picture comes out of the same call.
type KeyframeDecoder struct {
	mu  sync.Mutex
	d   *C.kfdec
	sps []byte
	pps []byte
	buf []byte
	pic []byte
}

// Picture is a decoded grey picture (valid until the next Decode).
type Picture struct {
	Width, Height int
	Y             []byte // Width*Height bytes, rows contiguous
}

// NewKeyframeDecoder opens a decoder. Close it.
func NewKeyframeDecoder() (*KeyframeDecoder, error) {
	var cerr [256]C.char
	d := C.kfdec_new(&cerr[0], C.int(len(cerr)))
	if d == nil {
		return nil, fmt.Errorf("decoder: %s", C.GoString(&cerr[0]))
	}
	return &KeyframeDecoder{d: d}, nil
}

// SetParams gives the decoder SPS and PPS from the SDP; they are sent before every keyframe
// that does not carry its own.
func (k *KeyframeDecoder) SetParams(sps, pps []byte) {
	k.mu.Lock()
	k.sps, k.pps = sps, pps
	k.mu.Unlock()
}

// Decode decodes one access unit (NAL units without start codes; a keyframe).
func (k *KeyframeDecoder) Decode(au [][]byte) (Picture, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.d == nil {
		return Picture{}, errors.New("decoder: closed")
	}
	var hasSPS, hasPPS, idr bool
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			hasSPS, k.sps = true, n
		case h264.NALUTypePPS:
			hasPPS, k.pps = true, n
		case h264.NALUTypeIDR:
			idr = true
		}
	}
	if !idr {
		return Picture{}, errors.New("decoder: not a keyframe")
	}
	nalus := make([][]byte, 0, len(au)+2)
	if !hasSPS && k.sps != nil {
		nalus = append(nalus, k.sps)
	}
	if !hasPPS && k.pps != nil {
		nalus = append(nalus, k.pps)
	}
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
			nalus = append(nalus, n)
		}
	}
	size := 0
	for _, n := range nalus {
		size += 4 + len(n)
	}
	if cap(k.buf) < size+C.AV_INPUT_BUFFER_PADDING_SIZE {
		k.buf = make([]byte, 0, size+C.AV_INPUT_BUFFER_PADDING_SIZE+4096)
	}
	b := k.buf[:0]
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	// libavcodec reads up to AV_INPUT_BUFFER_PADDING_SIZE bytes past the end; they must be 0.
	// (It copies an unreferenced packet, so Go memory is fine for the call.)
	clear(b[len(b) : len(b)+C.AV_INPUT_BUFFER_PADDING_SIZE])
	var w, h, stride C.int
	var y *C.uint8_t
	var cerr [256]C.char
	if r := C.kfdec_decode(k.d, (*C.uint8_t)(unsafe.Pointer(&b[0])), C.int(len(b)), &w, &h, &y, &stride, &cerr[0], C.int(len(cerr))); r < 0 {
		return Picture{}, fmt.Errorf("decoder: %s", C.GoString(&cerr[0]))
	}
	W, H, S := int(w), int(h), int(stride)
	if cap(k.pic) < W*H {
		k.pic = make([]byte, W*H)
	}
	k.pic = k.pic[:W*H]
	src := unsafe.Slice((*byte)(unsafe.Pointer(y)), S*(H-1)+W)
	if S == W {
		copy(k.pic, src[:W*H])
	} else {
		for r := 0; r < H; r++ {
			copy(k.pic[r*W:(r+1)*W], src[r*S:r*S+W])
		}
	}
	return Picture{Width: W, Height: H, Y: k.pic}, nil
}

// Close frees the decoder.
func (k *KeyframeDecoder) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	C.kfdec_free(k.d)
	k.d = nil
}

// Keyframes splits an H.264 Annex-B elementary stream into access units and returns the IDR
// ones (with the SPS/PPS in front of them, without access unit delimiters), as a camera
// would send them. Tests and the benchmark feed files through the same path as RTSP with it.
func Keyframes(annexB []byte) ([][][]byte, error) {
	aus, err := h264file.AccessUnits(annexB)
	if err != nil {
		return nil, fmt.Errorf("keyframes: %w", err)
	}
	var out [][][]byte
	for _, au := range aus {
		if !h264.IsRandomAccess(au) {
			continue
		}
		kf := au[:0:0]
		for _, n := range au {
			if h264.NALUType(n[0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
				kf = append(kf, n)
			}
		}
		out = append(out, kf)
	}
	return out, nil
}
