package api

import (
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginResponse is the answer to POST /api/v1/auth/login.
type LoginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      auth.User `json:"user"`
}

func (s *Server) login(c *fiber.Ctx) error {
	var req loginRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return errs.E(errs.KindInvalid, "invalid_request", "username and password are required")
	}
	// auth.Service audits every attempt, with the IP.
	token, expires, u, err := s.Auth.Login(c.UserContext(), req.Username, req.Password, c.IP())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(LoginResponse{Token: token, ExpiresAt: expires.UTC(), User: u})
}

func (s *Server) logout(c *fiber.Ctx) error {
	tok, _ := c.Locals(localToken).(string)
	if err := s.Auth.Logout(c.UserContext(), tok, c.IP()); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) me(c *fiber.Ctx) error {
	u, _ := UserOf(c)
	return c.JSON(u)
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	users, err := s.Auth.ListUsers(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"users": users})
}

func (s *Server) getUser(c *fiber.Ctx) error {
	u, err := s.Auth.GetUser(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

type userRequest struct {
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	Role        auth.Role `json:"role"`
	Departments []string  `json:"departments"`
	Regions     []string  `json:"regions"`
	Disabled    bool      `json:"disabled"`
	// Password is only read on create; leave it out to have one generated.
	Password string `json:"password,omitempty"`
}

func (r userRequest) user() auth.User {
	return auth.User{Username: r.Username, DisplayName: r.DisplayName, Role: r.Role,
		Departments: r.Departments, Regions: r.Regions, Disabled: r.Disabled}
}

// createdUser is a new user and, when the server generated the password, that password —
// shown this once and never again.
type createdUser struct {
	auth.User
	GeneratedPassword string `json:"generated_password,omitempty"`
}

func userDetail(u auth.User) string {
	return fmt.Sprintf("role=%s departments=%v regions=%v disabled=%t", u.Role, u.Departments, u.Regions, u.Disabled)
}

func (s *Server) createUser(c *fiber.Ctx) error {
	var req userRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	generated := ""
	if req.Password == "" {
		generated = auth.GeneratePassword()
		req.Password = generated
	}
	u, err := s.Auth.CreateUser(c.UserContext(), req.user(), req.Password)
	s.Record(c, "user.create", auth.NormalizeUsername(req.Username), err, userDetail(req.user()))
	if err != nil {
		return err
	}
	c.Location("/api/v1/users/" + u.ID)
	return c.Status(fiber.StatusCreated).JSON(createdUser{User: u, GeneratedPassword: generated})
}

func (s *Server) updateUser(c *fiber.Ctx) error {
	var req userRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if req.Password != "" {
		return errs.E(errs.KindInvalid, "invalid_request", "change passwords with PUT /api/v1/users/{id}/password")
	}
	in := req.user()
	in.ID = c.Params("id")
	u, err := s.Auth.UpdateUser(c.UserContext(), in)
	target := u.Username
	if target == "" {
		target = in.ID
	}
	s.Record(c, "user.update", target, err, userDetail(in))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *Server) deleteUser(c *fiber.Ctx) error {
	id := c.Params("id")
	me, _ := UserOf(c)
	target, err := s.Auth.GetUser(c.UserContext(), id)
	if err == nil && target.ID == me.ID {
		err = errs.E(errs.KindConflict, "cannot_delete_self", "you cannot delete your own account")
	}
	if err == nil {
		err = s.Auth.DeleteUser(c.UserContext(), id)
	}
	name := target.Username
	if name == "" {
		name = id
	}
	s.Record(c, "user.delete", name, err, "")
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type passwordRequest struct {
	Password    string `json:"password"`
	OldPassword string `json:"old_password,omitempty"`
}

// setPassword lets an admin set anyone's password, and anyone change their own with the old
// one (admins too: proving the old password protects against a stolen token).
func (s *Server) setPassword(c *fiber.Ctx) error {
	me, _ := UserOf(c)
	id := c.Params("id")
	self := id == me.ID
	if !self && !auth.Allowed(me.Role, auth.PermUsersManage) {
		return s.deny(c, me, string(auth.PermUsersManage))
	}
	var req passwordRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if req.Password == "" {
		return errs.E(errs.KindInvalid, "invalid_request", "password is required")
	}
	var err error
	target := id
	if self {
		target = me.Username
		if req.OldPassword == "" {
			err = errs.E(errs.KindInvalid, "invalid_request", "old_password is required to change your own password")
		} else {
			err = s.Auth.ChangeOwnPassword(c.UserContext(), id, req.OldPassword, req.Password)
		}
	} else {
		if u, gerr := s.Auth.GetUser(c.UserContext(), id); gerr == nil {
			target = u.Username
		}
		err = s.Auth.SetPassword(c.UserContext(), id, req.Password)
	}
	s.Record(c, "user.password", target, err, "")
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// unlockUser ends every login lock-out of a user (POST /api/v1/users/{id}/unlock, admin).
func (s *Server) unlockUser(c *fiber.Ctx) error {
	me, _ := UserOf(c)
	e := audit.Entry{Actor: me.Username, Role: string(me.Role), IP: c.IP()}
	u, err := s.Auth.Unlock(c.UserContext(), c.Params("id"), e)
	if err != nil {
		return err
	}
	return c.JSON(u)
}
