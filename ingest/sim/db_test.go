package sim_test

import (
	"testing"

	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func mustDB(t *testing.T) *store.DB { return storetest.SQLite(t, testSchema...) }
