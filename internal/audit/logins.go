package audit

import (
	"context"
	"fmt"
	"time"
)

// RecentFailedLogins returns the times of the failed logins (action auth.login, result failed)
// of actor from ip since since, newest first and at most limit, counting only those after the
// last successful login of actor from ip and after the last unlock or password reset of actor
// (user.unlock, user.password with target actor, result ok). The lock-out per account and address is
// derived from it, so it survives restarts and is shared by every gateway on one database.
func (l *Log) RecentFailedLogins(ctx context.Context, actor, ip string, since time.Time, limit int) ([]time.Time, error) {
	var reset *int64
	err := l.DB.QueryRow(ctx, `SELECT MAX(id) FROM audit WHERE at >= ? AND result = 'ok' AND
		((action = 'auth.login' AND actor = ? AND ip = ?) OR (action IN ('user.unlock', 'user.password') AND target = ?))`,
		since.UnixMilli(), actor, ip, actor).Scan(&reset)
	if err != nil {
		return nil, fmt.Errorf("audit: failed logins: %w", err)
	}
	after := int64(0)
	if reset != nil {
		after = *reset
	}
	rows, err := l.DB.Query(ctx, fmt.Sprintf(`SELECT at FROM audit WHERE actor = ? AND at >= ? AND action = 'auth.login'
		AND ip = ? AND result = 'failed' AND id > ? ORDER BY id DESC LIMIT %d`, max(limit, 1)),
		actor, since.UnixMilli(), ip, after)
	if err != nil {
		return nil, fmt.Errorf("audit: failed logins: %w", err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at int64
		if err := rows.Scan(&at); err != nil {
			return nil, err
		}
		out = append(out, time.UnixMilli(at))
	}
	return out, rows.Err()
}
