package rules_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	profiles "github.com/offsite-gw/offsite/firmware-profiles"
)

// The shipped gas detector has two upper limits on one metric; a reading over both names the
// limit it crossed without contradiction, and a reading exactly at a limit 达到 it.
func TestTwoLimitsNamedInMessage(t *testing.T) {
	reg, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	gas, ok := reg.Get("gas-detector")
	require.True(t, ok)
	gas.ID = "test-dust" // the harness's devices use this profile id

	h := newHarness(t, nil, gas)
	h.observe(0, "lel", 3)
	h.observe(minute, "lel", 35)
	byRule := map[string]string{}
	for _, e := range h.out.events() {
		byRule[e.Rule] = e.Message
	}
	require.Contains(t, byRule["lel-high"], "可燃气体浓度 35 %LEL，超过高限 20 %LEL")
	require.Contains(t, byRule["lel-low"], "可燃气体浓度 35 %LEL，超过低限 10 %LEL")

	h = newHarness(t, nil, gas)
	h.observe(0, "lel", 10)
	require.Contains(t, h.out.events()[0].Message, "可燃气体浓度 10 %LEL，达到低限 10 %LEL")
}
