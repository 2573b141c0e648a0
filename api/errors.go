package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/errs"
)

// ErrorBody is the shape of every error answer: {"error": {"code": …, "message": …}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong. Rows is set by CSV import only.
type ErrorDetail struct {
	Code      string             `json:"code"`
	Message   string             `json:"message"`
	RequestID string             `json:"request_id,omitempty"`
	Rows      []devices.RowError `json:"rows,omitempty"`
	Truncated bool               `json:"truncated,omitempty"`
}

// StatusOf maps an error kind to its HTTP status (errs.HTTPStatus).
func StatusOf(k errs.Kind) int { return errs.HTTPStatus(k) }

// handleError is the fiber ErrorHandler: it writes err as an ErrorBody with the status of its
// kind. Internal errors are logged with the request id and answered without their details.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var (
		status  int
		code    string
		message string
	)
	var fe *fiber.Error
	var ee *errs.Error
	switch {
	case errors.As(err, &ee):
		status, code, message = StatusOf(ee.Kind), ee.Code, ee.Message
		if code == "" {
			code = "error"
		}
	case errors.As(err, &fe):
		status, code, message = fe.Code, codeForStatus(fe.Code), fe.Message
	default:
		status, code = fiber.StatusInternalServerError, "internal"
	}
	if status >= 500 && status != fiber.StatusServiceUnavailable {
		Logger(c).Error("request failed", "path", c.Path(), "status", status, "err", err)
		message = "internal error; the administrator can find it in the gateway log by the request id"
		code = "internal"
	} else if status == fiber.StatusServiceUnavailable {
		Logger(c).Warn("dependency unavailable", "path", c.Path(), "err", err)
	}
	if wait := auth.RetryAfter(err); wait > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds()+0.5)))
	}
	return writeError(c, status, ErrorDetail{Code: code, Message: message})
}

func writeError(c *fiber.Ctx, status int, d ErrorDetail) error {
	if d.RequestID == "" {
		d.RequestID = RequestID(c.UserContext())
	}
	c.Locals(localErrCode, d.Code)
	c.Status(status)
	return c.JSON(ErrorBody{Error: d})
}

// codeForStatus names fiber's own errors (no route, wrong method, body too large).
func codeForStatus(status int) string {
	switch status {
	case fiber.StatusNotFound:
		return "not_found"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	case fiber.StatusRequestEntityTooLarge:
		return "body_too_large"
	case fiber.StatusBadRequest:
		return "bad_request"
	case fiber.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case fiber.StatusRequestTimeout:
		return "timeout"
	}
	s := strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	if s == "" {
		return "error"
	}
	return s
}

// DecodeJSON reads the request body into v: unknown fields, trailing data, a wrong Content-Type
// and malformed JSON are 400 errors (codes unknown_field, invalid_json) or 415.
func DecodeJSON(c *fiber.Ctx, v any) error {
	if ct := c.Get(fiber.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != fiber.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return fiber.NewError(fiber.StatusUnsupportedMediaType, "send the body as application/json")
		}
	}
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return errs.E(errs.KindInvalid, "invalid_json", "the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.E(errs.KindInvalid, "invalid_json", "unexpected data after the JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return errs.E(errs.KindInvalid, "invalid_json", "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the body"
		}
		return errs.E(errs.KindInvalid, "invalid_json", "%s must be %s, not %s", field, typeName(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.E(errs.KindInvalid, "invalid_json", "the JSON body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errs.E(errs.KindInvalid, "unknown_field", "%s is not a known field", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errs.E(errs.KindInvalid, "invalid_json", "cannot read the JSON body: %v", err)
}

func typeName(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "map[") || strings.Contains(t, "."):
		if strings.HasSuffix(t, "Role") || strings.HasSuffix(t, "Kind") {
			return "a string"
		}
		if t == "time.Time" {
			return "an RFC 3339 time string"
		}
		return "an object"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint") || strings.HasPrefix(t, "float"):
		return "a number"
	}
	return fmt.Sprintf("of type %s", t)
}
