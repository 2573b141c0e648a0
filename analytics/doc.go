// Package analytics decides what is a violation or a risk: rules on sensor readings
// (threshold, duration, rate, silence), evaluated in the gateway, and the video analytics
// worker offsite-analytics (a separate cgo + OpenCV process) that watches the re-served
// streams for tampering, empty service counters, crowding and motion. It does not deliver
// events; it hands them to the gateway.
package analytics
