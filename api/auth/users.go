package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

func newUserID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "usr_" + hex.EncodeToString(b[:])
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// CreateUser adds u with password and returns it as stored (with its new ID). Errors:
// KindInvalid (invalid_username, invalid_role, invalid_scope, weak_password), KindConflict
// (username_taken). The caller audits the change; it knows who made it.
func (s *Service) CreateUser(ctx context.Context, u User, password string) (User, error) {
	if err := u.validate(); err != nil {
		return User{}, err
	}
	if err := CheckPassword(u.Username, password); err != nil {
		return User{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	u.ID = newUserID()
	u.CreatedAt, u.UpdatedAt, u.LockedUntil = now, now, nil
	_, err := s.DB.Exec(ctx, `INSERT INTO users(`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?)`,
		u.ID, u.Username, u.DisplayName, HashPassword(s.Argon2, password), string(u.Role),
		jsonList(u.Departments), jsonList(u.Regions), u.Disabled, now.UnixMilli(), now.UnixMilli())
	if store.IsUniqueViolation(err) {
		return User{}, errs.E(errs.KindConflict, "username_taken", "username %q is already taken", u.Username)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: create user: %w", err)
	}
	return u, nil
}

// GetUser returns the user with id (KindNotFound, user_not_found).
func (s *Service) GetUser(ctx context.Context, id string) (User, error) {
	r, err := s.loadUser(ctx, `id = ?`, id)
	return r.User, err
}

// GetUserByUsername returns the user with username (compared after NormalizeUsername).
func (s *Service) GetUserByUsername(ctx context.Context, username string) (User, error) {
	r, err := s.loadUser(ctx, `username = ?`, NormalizeUsername(username))
	return r.User, err
}

// ListUsers returns every user ordered by username.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	defer rows.Close()
	now := s.now()
	out := []User{}
	for rows.Next() {
		r, err := scanUser(rows, now)
		if err != nil {
			return nil, err
		}
		out = append(out, r.User)
	}
	return out, rows.Err()
}

// UpdateUser replaces the display name, role, departments, regions and disabled flag of the
// user u.ID. The username cannot change (the audit log refers to it). Demoting, disabling or
// deleting the last enabled admin is refused (KindConflict, last_admin). Disabling a user
// revokes the user's tokens.
func (s *Service) UpdateUser(ctx context.Context, u User) (User, error) {
	var out User
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		cur, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, u.ID), s.now())
		if store.IsNoRows(err) {
			return errs.E(errs.KindNotFound, "user_not_found", "no such user")
		}
		if err != nil {
			return fmt.Errorf("auth: load user: %w", err)
		}
		if u.Username == "" {
			u.Username = cur.Username
		}
		if err := u.validate(); err != nil {
			return err
		}
		if u.Username != cur.Username {
			return errs.E(errs.KindInvalid, "username_immutable", "the username cannot be changed; create a new user instead")
		}
		if cur.Role == RoleAdmin && !cur.Disabled && (u.Role != RoleAdmin || u.Disabled) {
			if err := lastAdminCheck(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		now := s.now().UTC().Truncate(time.Millisecond)
		if _, err := tx.Exec(ctx, `UPDATE users SET display_name = ?, role = ?, departments = ?, regions = ?, disabled = ?, updated_at = ? WHERE id = ?`,
			u.DisplayName, string(u.Role), jsonList(u.Departments), jsonList(u.Regions), u.Disabled, now.UnixMilli(), u.ID); err != nil {
			return fmt.Errorf("auth: update user: %w", err)
		}
		if u.Disabled {
			if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE user_id = ?`, u.ID); err != nil {
				return fmt.Errorf("auth: revoke tokens: %w", err)
			}
		}
		out = u
		out.CreatedAt, out.UpdatedAt, out.LockedUntil = cur.CreatedAt, now, cur.LockedUntil
		return nil
	})
	return out, err
}

// lastAdminCheck refuses a change that would leave no enabled admin other than userID.
func lastAdminCheck(ctx context.Context, tx *store.Tx, userID string) error {
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE role = ? AND disabled = ? AND id <> ?`,
		string(RoleAdmin), false, userID).Scan(&n); err != nil {
		return fmt.Errorf("auth: count admins: %w", err)
	}
	if n == 0 {
		return errs.E(errs.KindConflict, "last_admin", "this is the last enabled admin; make another user admin first")
	}
	return nil
}

// SetPassword replaces the password of user id, clears a lock-out and revokes every token of
// the user (sessions must log in again with the new password).
func (s *Service) SetPassword(ctx context.Context, id, password string) error {
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return err
	}
	if err := CheckPassword(u.Username, password); err != nil {
		return err
	}
	hash := HashPassword(s.Argon2, password)
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0, updated_at = ? WHERE id = ?`,
			hash, s.now().UnixMilli(), id); err != nil {
			return fmt.Errorf("auth: set password: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE user_id = ?`, id); err != nil {
			return fmt.Errorf("auth: revoke tokens: %w", err)
		}
		return nil
	})
}

// ChangeOwnPassword is SetPassword for a user who proves the old password. A wrong old
// password counts towards the lock-out like a failed login (so a stolen token cannot be used
// to guess the password) and is KindForbidden, wrong_password.
func (s *Service) ChangeOwnPassword(ctx context.Context, id, oldPassword, newPassword string) error {
	r, err := s.loadUser(ctx, `id = ?`, id)
	if err != nil {
		return err
	}
	now := s.now()
	if r.lockedUntil > now.UnixMilli() {
		return lockedErr("account_locked", "account temporarily locked after too many failed attempts; try again in %s", time.UnixMilli(r.lockedUntil).Sub(now))
	}
	if ok, _ := VerifyPassword(r.hash, oldPassword); !ok {
		if _, err := s.recordFailure(ctx, id, now); err != nil {
			return err
		}
		return errs.E(errs.KindForbidden, "wrong_password", "the current password is wrong")
	}
	return s.SetPassword(ctx, id, newPassword)
}

// DeleteUser removes user id and the user's tokens. The last enabled admin cannot be deleted.
func (s *Service) DeleteUser(ctx context.Context, id string) error {
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		var role string
		var disabled bool
		err := tx.QueryRow(ctx, `SELECT role, disabled FROM users WHERE id = ?`, id).Scan(&role, &disabled)
		if store.IsNoRows(err) {
			return errs.E(errs.KindNotFound, "user_not_found", "no such user")
		}
		if err != nil {
			return fmt.Errorf("auth: load user: %w", err)
		}
		if Role(role) == RoleAdmin && !disabled {
			if err := lastAdminCheck(ctx, tx, id); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE user_id = ?`, id); err != nil {
			return fmt.Errorf("auth: revoke tokens: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
			return fmt.Errorf("auth: delete user: %w", err)
		}
		return nil
	})
}

// EnsureAdmin creates the user "admin" with a random password when there are no users at all
// (first start). It returns the password once, for the caller to show; it is not stored in
// clear anywhere. With users present it does nothing and created is false.
func (s *Service) EnsureAdmin(ctx context.Context) (password string, created bool, err error) {
	var n int
	if err := s.DB.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return "", false, fmt.Errorf("auth: count users: %w", err)
	}
	if n > 0 {
		return "", false, nil
	}
	password = GeneratePassword()
	u, err := s.CreateUser(ctx, User{Username: "admin", DisplayName: "Administrator", Role: RoleAdmin}, password)
	if errs.Is(err, errs.KindConflict) {
		return "", false, nil // another gateway on the same database was first
	}
	if err != nil {
		return "", false, err
	}
	s.record(ctx, audit.Entry{Actor: "system", Action: "user.create", Target: u.Username, Result: "ok", Detail: "initial admin"})
	return password, true, nil
}
