// Package arm64smoke holds the arm64 smoke test: the linux/arm64 gateway, run under qemu
// user-mode emulation by scripts/arm64-smoke.sh, starts in demo mode and serves a user, a
// sensor and the province uplink. It has no code of its own, only the test.
package arm64smoke
