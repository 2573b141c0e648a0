package sim_test

import (
	"testing"

	"github.com/offsite-gw/offsite/gateway/store"
	"github.com/offsite-gw/offsite/gateway/store/storetest"
)

func mustDB(t *testing.T) *store.DB { return storetest.SQLite(t) }
