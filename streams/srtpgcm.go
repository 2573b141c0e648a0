package streams

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// rtpSealer turns an RTP header and payload into an SRTP packet, written into dst (in place
// when dst has room). roc is the packet's rollover counter (RFC 3711 §3.3.1): the session
// numbers its packets itself and knows each one's full index, so the sealer never has to guess
// it from the sequence numbers it saw.
type rtpSealer interface {
	seal(dst []byte, h *rtp.Header, payload []byte, roc uint32) ([]byte, error)
}

// gcmSealer is the sending half of SRTP under the AEAD_AES_128_GCM and AEAD_AES_256_GCM
// profiles (RFC 7714), the profiles browsers negotiate with the relay. It exists because it
// does per packet only what the relay needs — marshal the header into the send buffer and seal
// the payload behind it — where pion's general context also looks up per-SSRC state, parses
// the header it was just given and copies the packet once more.
type gcmSealer struct {
	aead cipher.AEAD
	salt [12]byte // session salt (RFC 7714 §8.1)
	iv   [12]byte
}

// SRTP key derivation labels (RFC 3711 §4.3.2).
const (
	labelRTPEncryption = 0x00
	labelRTPSalt       = 0x02
)

// newGCMSealer derives the session key and salt from the master key and salt with the AES-CM
// PRF (RFC 3711 §4.3.3, key derivation rate 0; RFC 7714 §11: a 96-bit master salt).
func newGCMSealer(masterKey, masterSalt []byte) (*gcmSealer, error) {
	if len(masterSalt) != 12 || (len(masterKey) != 16 && len(masterKey) != 32) {
		return nil, errors.New("srtp gcm: master key must be 16 or 32 bytes and the salt 12")
	}
	key, err := srtpKDF(masterKey, masterSalt, labelRTPEncryption, len(masterKey))
	if err != nil {
		return nil, err
	}
	salt, err := srtpKDF(masterKey, masterSalt, labelRTPSalt, 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	wipe(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	g := &gcmSealer{aead: aead}
	copy(g.salt[:], salt)
	return g, nil
}

// srtpKDF is the AES-CM key derivation: AES in counter mode under the master key over the
// input block (master salt, padded to 14 bytes, XOR the label at byte 7) followed by a 16-bit
// block counter.
func srtpKDF(masterKey, masterSalt []byte, label byte, n int) ([]byte, error) {
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, err
	}
	var in [16]byte
	copy(in[:14], masterSalt)
	in[7] ^= label
	out := make([]byte, (n+15)/16*16)
	for i := 0; i*16 < n; i++ {
		binary.BigEndian.PutUint16(in[14:], uint16(i))
		block.Encrypt(out[i*16:], in[:])
	}
	return out[:n], nil
}

func (g *gcmSealer) seal(dst []byte, h *rtp.Header, payload []byte, roc uint32) ([]byte, error) {
	n := h.MarshalSize()
	need := n + len(payload) + g.aead.Overhead()
	if cap(dst) < need {
		dst = make([]byte, 0, need)
	}
	dst = dst[:n]
	if _, err := h.MarshalTo(dst); err != nil {
		return nil, err
	}
	// IV (RFC 7714 §8.1): 00 00 || SSRC || ROC || SEQ, XOR the session salt
	iv := &g.iv
	*iv = [12]byte{}
	binary.BigEndian.PutUint32(iv[2:], h.SSRC)
	binary.BigEndian.PutUint32(iv[6:], roc)
	binary.BigEndian.PutUint16(iv[10:], h.SequenceNumber)
	for i := range iv {
		iv[i] ^= g.salt[i]
	}
	// the header is the additional authenticated data; the payload is sealed behind it
	return g.aead.Seal(dst, iv[:], payload, dst[:n]), nil
}

// contextSealer seals with a pion SRTP context (the AES-CM/HMAC-SHA1 profiles).
type contextSealer struct {
	ctx   *srtp.Context
	hdr   rtp.Header
	plain []byte
}

func (c *contextSealer) seal(dst []byte, h *rtp.Header, payload []byte, roc uint32) ([]byte, error) {
	// the session's index is authoritative; the context would guess the counter from the
	// last sequence number it sealed
	c.ctx.SetROC(h.SSRC, roc)
	n := h.MarshalSize()
	need := n + len(payload)
	if cap(c.plain) < need {
		c.plain = make([]byte, need+256)
	}
	plain := c.plain[:need]
	if _, err := h.MarshalTo(plain); err != nil {
		return nil, err
	}
	copy(plain[n:], payload)
	return c.ctx.EncryptRTP(dst, plain, &c.hdr)
}
