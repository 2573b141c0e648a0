// A module of its own, outside the gateway's build: the reproducer pins the gmsm version that
// crashed, which the gateway no longer uses.
module sm4sigill

go 1.26.0

require (
	github.com/emmansun/gmsm v0.15.5
	golang.org/x/sys v0.50.0
)
