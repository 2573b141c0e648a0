package streams

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// srtpContexts returns a random master key and salt for prof and two pion contexts made from
// them: one to seal reference packets (or to be wrapped), one to decrypt.
func srtpContexts(t *testing.T, prof srtp.ProtectionProfile) (key, salt []byte, a, b *srtp.Context) {
	t.Helper()
	keyLen, _ := prof.KeyLen()
	saltLen, _ := prof.SaltLen()
	key, salt = make([]byte, keyLen), make([]byte, saltLen)
	_, _ = rand.Read(key)
	_, _ = rand.Read(salt)
	var err error
	if a, err = srtp.CreateContext(key, salt, prof); err != nil {
		t.Fatal(err)
	}
	if b, err = srtp.CreateContext(key, salt, prof); err != nil {
		t.Fatal(err)
	}
	return key, salt, a, b
}

// The relay's own AES-GCM SRTP sealer produces exactly the packets pion's SRTP context does
// for the same keys — for both GCM profiles, two SSRCs, header extensions, and across a
// sequence-number wrap (where the rollover counter enters the IV) — and pion decrypts them.
func TestGCMSealerMatchesPion(t *testing.T) {
	for _, prof := range []srtp.ProtectionProfile{srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm} {
		key, salt, ref, dec := srtpContexts(t, prof)
		own, err := newGCMSealer(key, salt)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, 1100)
		_, _ = rand.Read(payload)
		vidx, aidx := uint64(0xfff0), uint64(0x7ffe) // SRTP packet indexes
		for i := range 60 {
			idx := vidx
			h := rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: uint16(idx), Timestamp: uint32(i * 3600), SSRC: 0x1234abcd, Marker: i%7 == 6}
			if i%2 == 1 {
				idx = aidx
				h = rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(idx), Timestamp: uint32(i * 160), SSRC: 0x0badf00d}
				aidx++
			} else {
				vidx++
			}
			if i%5 == 0 {
				_ = h.SetExtension(1, []byte{0xaa, 0xbb})
			}
			pl := payload[:100+i*10]
			plain, err := (&rtp.Packet{Header: h, Payload: pl}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.EncryptRTP(nil, plain, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := own.seal(make([]byte, 0, 1500), &h, pl, uint32(idx>>16))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("profile %v packet %d (seq %d): sealed packet differs from pion's", prof, i, h.SequenceNumber)
			}
			back, err := dec.DecryptRTP(nil, got, nil)
			if err != nil || !bytes.Equal(back, plain) {
				t.Fatalf("profile %v packet %d: pion cannot decrypt it: %v", prof, i, err)
			}
		}
	}
}

// For a viewer that offers only the AES-CM/HMAC-SHA1 profile, the pion-context sealer's packets
// decrypt with pion to what was sealed, also across a wrap, and each is sealed with the rollover
// counter the session hands in, not one the context guesses from the sequence numbers it saw.
func TestContextSealerRoundTrip(t *testing.T) {
	_, _, enc, dec := srtpContexts(t, srtp.ProtectionProfileAes128CmHmacSha1_80)
	c := &contextSealer{ctx: enc}
	payload := make([]byte, 1200)
	_, _ = rand.Read(payload)
	for i := range 6 {
		idx := uint64(0xfffe + i)
		if i == 5 {
			idx = 3<<16 | 10 // a counter the sequence numbers alone do not tell
			dec.SetROC(42, 3)
		}
		h := rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: uint16(idx), Timestamp: 9000, SSRC: 42}
		sealed, err := c.seal(make([]byte, 0, 1500), &h, payload, uint32(idx>>16))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, payload[:64]) {
			t.Fatal("payload left in the clear")
		}
		back, err := dec.DecryptRTP(nil, sealed, nil)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(back); err != nil || !bytes.Equal(p.Payload, payload) || p.SequenceNumber != h.SequenceNumber {
			t.Fatalf("packet %d does not round-trip: %v", i, err)
		}
	}
}
