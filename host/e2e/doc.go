// Package e2e tests Sluice as operators run it: the real sluice binary, started
// as separate processes from their own configuration files, in front of the
// built-in mock upstream, with real PostgreSQL and Redis servers where the
// configuration names them. Its tests check what a user of several replicas
// would notice: limits and budgets that hold across processes, keys revoked
// everywhere, the fail mode while Redis is down, and a ledger that keeps every
// answered request through a SIGTERM.
//
// The package holds tests only. `go test ./host/e2e/` builds the binary once
// and needs redis-server on the PATH; the PostgreSQL tests need the services
// `make test` starts (see host/internal/testenv).
package e2e
