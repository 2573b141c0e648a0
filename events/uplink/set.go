package uplink

import (
	"fmt"
	"log/slog"
	"sort"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/lease"
)

// Set owns every configured uplink and webhook: the API looks them up by name.
type Set struct {
	Configs   []Config
	GatewayID string
	Log       *events.Log
	Logger    *slog.Logger
	// Version and Inventory are handed to centre uplinks (kind centre).
	Version   string
	Inventory InventoryFunc
	// Lease, if set, gives each uplink to one instance at a time (see Uplink.Lease).
	Lease *lease.Keeper

	byName map[string]*Uplink
	order  []*Uplink
}

// Initialize starts every uplink; on an error it stops the ones already started.
func (s *Set) Initialize() error {
	s.byName = map[string]*Uplink{}
	for _, c := range s.Configs {
		if _, dup := s.byName[c.Name]; dup {
			s.Close()
			return fmt.Errorf("uplinks: name %q used twice (each name has its own cursor)", c.Name)
		}
		u := &Uplink{Config: c, GatewayID: s.GatewayID, Log: s.Log, Logger: s.Logger, Version: s.Version, Lease: s.Lease}
		if c.Kind == KindCentre {
			u.Inventory = s.Inventory
		}
		if err := u.Initialize(); err != nil {
			s.Close()
			return err
		}
		s.byName[c.Name] = u
		s.order = append(s.order, u)
	}
	return nil
}

// HasCentre reports whether one of the uplinks is this site's centre.
func (s *Set) HasCentre() bool {
	for _, c := range s.Configs {
		if c.Kind == KindCentre {
			return true
		}
	}
	return false
}

// Close stops every uplink.
func (s *Set) Close() {
	for _, u := range s.order {
		u.Close()
	}
}

// Get returns the uplink of that name, or errs.KindNotFound.
func (s *Set) Get(name string) (*Uplink, error) {
	if u, ok := s.byName[name]; ok {
		return u, nil
	}
	return nil, errs.E(errs.KindNotFound, "uplink_not_found", "no uplink named %q", name)
}

// All returns the uplinks in configuration order.
func (s *Set) All() []*Uplink { return append([]*Uplink(nil), s.order...) }

// Statuses returns every uplink's status, sorted by name.
func (s *Set) Statuses() []Status {
	out := make([]Status, 0, len(s.order))
	for _, u := range s.order {
		out = append(out, u.Status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Collector exposes the set's metrics.
func (s *Set) Collector() Collector { return Collector{Uplinks: s.All} }
