// Package streams owns video: one RTSP pull per camera, the hub that fans packets out to
// viewers with a GOP cache, WebRTC (WHEP) egress, the RTSP re-serve for analytics workers and
// recorders, and snapshots and evidence clips. It never transcodes and never decides what is a
// violation.
package streams
