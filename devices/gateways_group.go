package devices

import (
	"context"
	"fmt"

	"github.com/offsite-gw/offsite/internal/store"
)

// A centre commits the batches of many site gateways in one transaction (group commit, see
// events/centre). The functions here record what each batch needs recorded — its request
// nonce, its gateway's contact — for the whole group at once: on PostgreSQL with one statement
// each, since every statement is a round trip taken while the centre's event log is locked.

// NonceUse is the nonce of one request of a gateway.
type NonceUse struct {
	Gateway string
	Nonce   string
}

// UseNonces is UseNonce for several requests in q's transaction: fresh[i] reports whether
// uses[i]'s nonce was new (false: a replay, also of an earlier request in uses).
func (s *GatewayStore) UseNonces(ctx context.Context, q Querier, uses []NonceUse) (fresh []bool, err error) {
	fresh = make([]bool, len(uses))
	if s.DB.Dialect != store.Postgres {
		for i, u := range uses {
			if fresh[i], err = s.UseNonce(ctx, q, u.Gateway, u.Nonce); err != nil {
				return nil, err
			}
		}
		return fresh, nil
	}
	first := make(map[NonceUse]int, len(uses))
	var gws, nonces []string
	for i, u := range uses {
		if _, seen := first[u]; seen {
			continue // a replay within the group: only the first may be fresh
		}
		first[u] = i
		gws, nonces = append(gws, u.Gateway), append(nonces, u.Nonce)
	}
	if len(gws) == 0 {
		return fresh, nil
	}
	rows, err := q.Query(ctx, `INSERT INTO gateway_nonces(gateway_id, nonce, at)
		SELECT u.gateway_id, u.nonce, ? FROM unnest(?::text[], ?::text[]) AS u(gateway_id, nonce)
		ON CONFLICT (gateway_id, nonce) DO NOTHING RETURNING gateway_id, nonce`, s.now().UnixMilli(), gws, nonces)
	if err != nil {
		return nil, fmt.Errorf("devices: record nonces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u NonceUse
		if err := rows.Scan(&u.Gateway, &u.Nonce); err != nil {
			return nil, fmt.Errorf("devices: record nonces: %w", err)
		}
		fresh[first[u]] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("devices: record nonces: %w", err)
	}
	return fresh, nil
}

// GatewayContact is one verified request of a gateway (see Contact).
type GatewayContact struct {
	Gateway string
	Addr    string
	Version string
	Backlog int64
	Events  int
}

// ContactsIn is ContactIn for several requests in q's transaction, in the order given (the
// latest address, version and backlog of a gateway are kept; its events add up). It returns
// the state each gateway was in before its first request in cs.
func (s *GatewayStore) ContactsIn(ctx context.Context, q Querier, cs []GatewayContact) (map[string]string, error) {
	var merged []GatewayContact
	at := make(map[string]int, len(cs))
	for _, c := range cs {
		i, ok := at[c.Gateway]
		if !ok {
			at[c.Gateway] = len(merged)
			merged = append(merged, c)
			continue
		}
		m := &merged[i]
		m.Addr, m.Backlog, m.Events = c.Addr, c.Backlog, m.Events+c.Events
		if c.Version != "" {
			m.Version = c.Version
		}
	}
	prev := make(map[string]string, len(merged))
	if s.DB.Dialect == store.Postgres && len(merged) > 0 {
		// The common case in one statement: every gateway that is online stays online.
		ids, addrs, versions := make([]string, len(merged)), make([]string, len(merged)), make([]string, len(merged))
		backlogs, counts := make([]int64, len(merged)), make([]int64, len(merged))
		for i, c := range merged {
			ids[i], addrs[i], versions[i], backlogs[i], counts[i] = c.Gateway, c.Addr, c.Version, c.Backlog, int64(c.Events)
		}
		rows, err := q.Query(ctx, `UPDATE gateways AS g SET last_seen = ?, last_addr = u.addr,
			events_received = g.events_received + u.n, backlog = u.backlog,
			version = CASE WHEN u.version = '' THEN g.version ELSE u.version END
			FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[]) AS u(id, addr, version, backlog, n)
			WHERE g.id = u.id AND g.state = ? RETURNING g.id`,
			s.now().UnixMilli(), ids, addrs, versions, backlogs, counts, GatewayOnline)
		if err != nil {
			return nil, fmt.Errorf("devices: record gateway contacts: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("devices: record gateway contacts: %w", err)
			}
			prev[id] = GatewayOnline
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("devices: record gateway contacts: %w", err)
		}
	}
	for _, c := range merged {
		if _, done := prev[c.Gateway]; done {
			continue
		}
		p, err := s.ContactIn(ctx, q, c.Gateway, c.Addr, c.Version, c.Backlog, c.Events)
		if err != nil {
			return nil, err
		}
		prev[c.Gateway] = p
	}
	return prev, nil
}
