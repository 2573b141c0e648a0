// Command sm4-sigill is the smallest program that showed the SIGILL of issue #20: it expands
// an SM4 key with github.com/emmansun/gmsm and encrypts the worked example of GB/T 32907-2016.
// Built for linux/arm64 and run on a CPU that has the ARMv8.2 SM4 instructions (qemu's "max"
// CPU model, or real hardware that lists "sm4" in /proc/cpuinfo), gmsm v0.15.5 dies in
// sm4.expandKeyAsm; v0.17.0 and later print the right ciphertext. See run.sh and
// docs/arm64.md.
package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/emmansun/gmsm/sm4"
	"golang.org/x/sys/cpu"
)

func main() {
	// GB/T 32907-2016 appendix A, example 1: the key is also the plaintext.
	key, _ := hex.DecodeString("0123456789abcdeffedcba9876543210")
	want, _ := hex.DecodeString("681edf34d206965e86b3e94f536e4246")
	fmt.Printf("cpu.ARM64.HasSM4=%v\n", cpu.ARM64.HasSM4)
	b, err := sm4.NewCipher(key)
	if err != nil {
		fmt.Println("NewCipher:", err)
		os.Exit(1)
	}
	got := make([]byte, sm4.BlockSize)
	b.Encrypt(got, key)
	if !bytes.Equal(got, want) {
		fmt.Printf("WRONG: got %x, want %x\n", got, want)
		os.Exit(1)
	}
	fmt.Printf("ok: %x\n", got)
}
