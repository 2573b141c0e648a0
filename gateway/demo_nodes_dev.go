package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"syscall"
)

// Node control of the demo city for tests (POST /_dev/nodes/{id}/down|up): down kills a site
// gateway (SIGKILL, as a power cut would) and keeps it down; up starts it again where it was.
// Demo only.

func registerNodeControl(mux *http.ServeMux, city *demoCity, logger *slog.Logger) {
	mux.HandleFunc("POST /_dev/nodes/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch r.PathValue("action") {
		case "down":
			err = city.hold(r.PathValue("id"))
		case "up":
			err = city.release(r.PathValue("id"))
		default:
			err = fmt.Errorf("action must be down or up")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		logger.Info("demo node switched", "node", r.PathValue("id"), "action", r.PathValue("action"))
		w.WriteHeader(http.StatusNoContent)
	})
}

func (c *demoCity) node(id string) *demoNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.spec.GatewayID == id {
			return n
		}
	}
	return nil
}

// hold kills a node and keeps watch from restarting it until release.
func (c *demoCity) hold(id string) error {
	n := c.node(id)
	if n == nil || n.spec.Role != "site" {
		return fmt.Errorf("no site gateway %q in the demo city", id)
	}
	n.mu.Lock()
	if n.held == nil {
		n.held = make(chan struct{})
	}
	cmd := n.cmd
	n.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	return nil
}

// release lets watch start a held node again.
func (c *demoCity) release(id string) error {
	n := c.node(id)
	if n == nil {
		return fmt.Errorf("no site gateway %q in the demo city", id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.held != nil {
		close(n.held)
		n.held = nil
	}
	return nil
}
