package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/offsite-gw/offsite/internal/benchkit"
)

// apiClient calls the centre's HTTP API as one user.
type apiClient = benchkit.Client

// enrol enrols n site gateways (POST /api/v1/gateways, a few at a time) and returns them
// with the secret the centre generated for each.
func enrol(ctx context.Context, admin *apiClient, n int) ([]*site, error) {
	sites := make([]*site, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("bench-gw-%03d", i+1)
			var ans struct {
				ID     string `json:"id"`
				Secret string `json:"secret"`
			}
			err := admin.JSON(ctx, http.MethodPost, "/api/v1/gateways", map[string]any{"id": id,
				"name": fmt.Sprintf("基准测试 站点网关 %03d", i+1), "base_url": fmt.Sprintf("http://127.0.0.1:%d", 20000+i)}, &ans)
			if err == nil && (ans.ID != id || ans.Secret == "") {
				err = fmt.Errorf("enrol %s: answer has id %q and %d secret characters", id, ans.ID, len(ans.Secret))
			}
			errs[i] = err
			sites[i] = newSite(i, id, ans.Secret)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return sites, nil
}

// createOfficer creates an officer of the benchmark's department and logs in as him.
func createOfficer(ctx context.Context, admin *apiClient) (*apiClient, error) {
	var u struct {
		GeneratedPassword string `json:"generated_password"`
	}
	if err := admin.JSON(ctx, http.MethodPost, "/api/v1/users", map[string]any{"username": "bench-officer",
		"display_name": "基准测试 值班员", "role": "officer", "departments": []string{department}}, &u); err != nil {
		return nil, fmt.Errorf("create officer: %w", err)
	}
	return benchkit.Login(ctx, admin.Base, admin.HTTP, "bench-officer", u.GeneratedPassword)
}
