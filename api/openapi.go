package api

import (
	_ "embed"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// openAPIDoc is the hand-written description of everything this package serves. Keep it in
// step with routes(); TestOpenAPICoversRoutes fails when a route is missing.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPIBase() (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// OpenAPI returns the document served at /api/v1/openapi.json.
func (s *Server) OpenAPI() ([]byte, error) {
	doc, err := s.openAPIBase()
	if err != nil {
		return nil, err
	}
	// Paths of optional components (x-offsite-component) are described only when served.
	if paths, ok := doc["paths"].(map[string]any); ok {
		for p, item := range paths {
			if m, ok := item.(map[string]any); ok {
				if comp, ok := m["x-offsite-component"].(string); ok && !s.componentEnabled(comp) {
					delete(paths, p)
				}
			}
		}
	}
	return json.Marshal(doc)
}

func (s *Server) openAPI(c *fiber.Ctx) error {
	b, err := s.OpenAPI()
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(b)
}

// UndocumentedRoutes lists the routes under /api/v1 ("METHOD /api/v1/x/{id}") that the
// OpenAPI document does not describe; tests call it with every component set.
func (s *Server) UndocumentedRoutes() ([]string, error) {
	b, err := s.OpenAPI()
	if err != nil {
		return nil, err
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	missing := map[string]bool{}
	for _, r := range s.app.GetRoutes(true) {
		if r.Method == fiber.MethodHead || !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		p := OpenAPIPath(r.Path)
		if _, ok := doc.Paths[p][strings.ToLower(r.Method)]; !ok {
			missing[r.Method+" "+p] = true
		}
	}
	return slices.Sorted(maps.Keys(missing)), nil
}

// OpenAPIPath turns a fiber route pattern (/devices/:id, /files/*) into OpenAPI's
// (/devices/{id}, /files/{path}).
func OpenAPIPath(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, ":"):
			parts[i] = "{" + strings.TrimSuffix(strings.TrimPrefix(p, ":"), "?") + "}"
		case p == "*" || p == "+":
			parts[i] = "{path}"
		}
	}
	return strings.Join(parts, "/")
}
