package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/internal/testenv"
)

var t0 = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func mustCreateClient(t testing.TB, st Store, id, dept string) Client {
	t.Helper()
	c := Client{ID: id, Department: dept, Tier: "standard", CreatedAt: t0}
	if err := st.CreateClient(context.Background(), c); err != nil {
		t.Fatalf("CreateClient(%s): %v", id, err)
	}
	return c
}

func TestOpenSQLiteCreatesParentDirectory(t *testing.T) {
	_, path := openNew(t, sqliteBackend)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
}

func TestClientRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		want := Client{
			ID: "billing-bot", Department: "finance", Tier: "gold",
			Labels:    map[string]string{"team": "ap", "env": "prod"},
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600)),
		}
		if err := st.CreateClient(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetClient(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(want.CreatedAt) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v in UTC", got.CreatedAt, want.CreatedAt)
		}
		got.CreatedAt = want.CreatedAt
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GetClient = %+v, want %+v", got, want)
		}

		err = st.CreateClient(ctx, want)
		if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "billing-bot") {
			t.Errorf("second CreateClient = %v, want ErrExists naming the id", err)
		}
		if _, err := st.GetClient(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetClient(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestCreateClientDefaultsCreatedAt(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		before := time.Now()
		if err := st.CreateClient(ctx, Client{ID: "a", Department: "d", Tier: "t"}); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetClient(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now()) {
			t.Errorf("CreatedAt = %v, want the time of creation", got.CreatedAt)
		}
	})
}

func TestListClientsSortedByID(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		// Byte order, the same on every database whatever its collation.
		for _, id := range []string{"zeta", "alpha", "Mid", "_x"} {
			mustCreateClient(t, st, id, "eng")
		}
		got, err := st.ListClients(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		if want := []string{"Mid", "_x", "alpha", "zeta"}; !reflect.DeepEqual(ids, want) {
			t.Errorf("ListClients ids = %v, want %v", ids, want)
		}
	})
}

func TestCreateClientValidation(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		tests := []struct {
			name string
			c    Client
		}{
			{"empty id", Client{Department: "d", Tier: "t"}},
			{"id with space", Client{ID: "a b", Department: "d", Tier: "t"}},
			{"id too long", Client{ID: strings.Repeat("x", 129), Department: "d", Tier: "t"}},
			{"empty department", Client{ID: "a", Tier: "t"}},
			{"empty tier", Client{ID: "a", Department: "d"}},
			{"empty label name", Client{ID: "a", Department: "d", Tier: "t", Labels: map[string]string{"": "v"}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := st.CreateClient(context.Background(), tt.c); !errors.Is(err, ErrInvalid) {
					t.Errorf("CreateClient = %v, want ErrInvalid", err)
				}
			})
		}
		if got, _ := st.ListClients(context.Background()); len(got) != 0 {
			t.Errorf("invalid clients were stored: %+v", got)
		}
	})
}

func testKey(id, clientID, secret string) Key {
	return Key{ID: id, ClientID: clientID, Prefix: secret[:10], Hash: sha256.Sum256([]byte(secret)), CreatedAt: t0}
}

func TestKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		alice := mustCreateClient(t, st, "alice", "eng")
		mustCreateClient(t, st, "bob", "sales")

		k1 := testKey("k1", "alice", "sk-sl-AAAAsecret1")
		k2 := testKey("k2", "bob", "sk-sl-BBBBsecret2")
		k2.CreatedAt = t0.Add(time.Second)
		for _, k := range []Key{k1, k2} {
			if err := st.CreateKey(ctx, k); err != nil {
				t.Fatalf("CreateKey(%s): %v", k.ID, err)
			}
		}

		key, client, err := st.KeyByHash(ctx, sha256.Sum256([]byte("sk-sl-AAAAsecret1")))
		if err != nil {
			t.Fatal(err)
		}
		if key.ID != "k1" || key.Prefix != "sk-sl-AAAA" || !key.Active() || !key.CreatedAt.Equal(t0) {
			t.Errorf("KeyByHash key = %+v", key)
		}
		if client.ID != alice.ID || client.Department != "eng" || client.Tier != "standard" {
			t.Errorf("KeyByHash client = %+v", client)
		}
		if _, _, err := st.KeyByHash(ctx, sha256.Sum256([]byte("sk-sl-unknown"))); !errors.Is(err, ErrNotFound) {
			t.Errorf("KeyByHash(unknown) = %v, want ErrNotFound", err)
		}

		t.Run("create errors", func(t *testing.T) {
			tests := []struct {
				name string
				k    Key
				want error
			}{
				{"unknown client", testKey("k3", "carol", "sk-sl-CCCCsecret3"), ErrNotFound},
				{"duplicate id", testKey("k1", "alice", "sk-sl-DDDDsecret4"), ErrExists},
				{"duplicate hash", testKey("k4", "bob", "sk-sl-AAAAsecret1"), ErrExists},
				{"prefix too long", Key{ID: "k5", ClientID: "alice", Prefix: "sk-sl-0123456789abcdef", Hash: sha256.Sum256([]byte("x"))}, ErrInvalid},
				{"empty prefix", Key{ID: "k5", ClientID: "alice", Hash: sha256.Sum256([]byte("x"))}, ErrInvalid},
				{"zero hash", Key{ID: "k5", ClientID: "alice", Prefix: "sk-sl-x"}, ErrInvalid},
				{"empty id", Key{ClientID: "alice", Prefix: "sk-sl-x", Hash: sha256.Sum256([]byte("x"))}, ErrInvalid},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if err := st.CreateKey(ctx, tt.k); !errors.Is(err, tt.want) {
						t.Errorf("CreateKey = %v, want %v", err, tt.want)
					}
				})
			}
		})

		t.Run("list", func(t *testing.T) {
			all, err := st.ListKeys(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 2 || all[0].ID != "k1" || all[1].ID != "k2" {
				t.Errorf("ListKeys(all) = %+v, want k1, k2", all)
			}
			bobs, err := st.ListKeys(ctx, "bob")
			if err != nil {
				t.Fatal(err)
			}
			if len(bobs) != 1 || bobs[0].ID != "k2" || bobs[0].Hash != k2.Hash {
				t.Errorf("ListKeys(bob) = %+v, want k2", bobs)
			}
			if _, err := st.ListKeys(ctx, "carol"); !errors.Is(err, ErrNotFound) {
				t.Errorf("ListKeys(unknown client) = %v, want ErrNotFound", err)
			}
		})

		t.Run("revoke", func(t *testing.T) {
			at := t0.Add(time.Hour + 7)
			if err := st.RevokeKey(ctx, "k1", at); err != nil {
				t.Fatal(err)
			}
			// A second revocation must not move the recorded time.
			if err := st.RevokeKey(ctx, "k1", at.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			key, _, err := st.KeyByHash(ctx, k1.Hash)
			if err != nil {
				t.Fatalf("KeyByHash(revoked) = %v, want the revoked key", err)
			}
			if key.Active() || !key.RevokedAt.Equal(at) {
				t.Errorf("RevokedAt = %v, want %v", key.RevokedAt, at)
			}
			if other, _, _ := st.KeyByHash(ctx, k2.Hash); !other.Active() {
				t.Errorf("revoking k1 revoked k2 too")
			}
			if err := st.RevokeKey(ctx, "nope", at); !errors.Is(err, ErrNotFound) {
				t.Errorf("RevokeKey(unknown) = %v, want ErrNotFound", err)
			}
			if err := st.RevokeKey(ctx, "k2", time.Time{}); !errors.Is(err, ErrInvalid) {
				t.Errorf("RevokeKey(zero time) = %v, want ErrInvalid", err)
			}
		})
		t.Run("scope and expiry", func(t *testing.T) {
			k := testKey("k-scoped", "alice", "sk-sl-EEEEsecret5")
			k.Name, k.CreatedBy, k.RotatedFrom = "ci", "cli", "k1"
			k.ExpiresAt = t0.Add(90 * 24 * time.Hour)
			k.Scope = KeyScope{Limits: KeyLimits{RPM: 10, DailyTokens: 5000, MonthlyNanos: 7_000_000_000},
				Models: []string{"gpt-4o-mini"}, Tags: map[string]string{"project": "search"}}
			if err := st.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
			got, _, err := st.KeyByHash(ctx, k.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, k) {
				t.Errorf("KeyByHash =\n%+v\nwant\n%+v", got, k)
			}
			// Bringing the expiry forward works; pushing it back does not.
			sooner, later := t0.Add(time.Hour), t0.Add(365*24*time.Hour)
			for _, at := range []time.Time{sooner, later} {
				if err := st.ExpireKey(ctx, k.ID, at); err != nil {
					t.Fatal(err)
				}
			}
			if got, _, _ := st.KeyByHash(ctx, k.Hash); !got.ExpiresAt.Equal(sooner) || !got.Expired(sooner) || got.Expired(sooner.Add(-1)) {
				t.Errorf("expires at %v, want %v", got.ExpiresAt, sooner)
			}
			if err := st.ExpireKey(ctx, "k-none", sooner); !errors.Is(err, ErrNotFound) {
				t.Errorf("ExpireKey(unknown) = %v, want ErrNotFound", err)
			}
			bad := testKey("k-bad", "alice", "sk-sl-FFFFsecret6")
			bad.Scope.Limits.RPM = -1
			if err := st.CreateKey(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("a negative limit: %v, want ErrInvalid", err)
			}
			if err := st.RevokeKey(ctx, k.ID, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		})

	})
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		loc := b.newDB(t)
		st, err := b.open(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		mustCreateClient(t, st, "alice", "eng")
		if err := st.CreateKey(ctx, testKey("k1", "alice", "sk-sl-AAAAsecret1")); err != nil {
			t.Fatal(err)
		}
		if err := st.InsertUsage(ctx, []UsageEvent{event("r1", "alice", "eng", "gpt-4o", t0, 10, 5)}); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		for i := range 2 {
			st, err = b.open(ctx, loc)
			if err != nil {
				t.Fatalf("reopen %d: %v", i, err)
			}
			if _, err := st.GetClient(ctx, "alice"); err != nil {
				t.Errorf("reopen %d: client lost: %v", i, err)
			}
			if _, _, err := st.KeyByHash(ctx, sha256.Sum256([]byte("sk-sl-AAAAsecret1"))); err != nil {
				t.Errorf("reopen %d: key lost: %v", i, err)
			}
			rows, err := st.Report(ctx, ReportQuery{GroupBy: GroupByClient})
			if err != nil || len(rows) != 1 || rows[0].Requests != 1 {
				t.Errorf("reopen %d: usage = %+v, %v; want one request", i, rows, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}
		assertMigratedOnce(t, b.raw(t, loc))
	})
}

// assertMigratedOnce checks that every migration is recorded exactly once.
func assertMigratedOnce(t *testing.T, db *sql.DB) {
	t.Helper()
	migrations, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var applied, distinct int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != len(migrations) || distinct != len(migrations) {
		t.Errorf("schema_migrations has %d rows (%d versions), want %d", applied, distinct, len(migrations))
	}
}

// TestConcurrentOpenMigratesOnce starts several replicas at once against one
// new database: every one must open, and the schema must be applied once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		loc := b.newDB(t)
		const replicas = 6
		stores := make([]Store, replicas)
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Go(func() { stores[i], errs[i] = b.open(context.Background(), loc) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
				continue
			}
			t.Cleanup(func() { _ = stores[i].Close() })
		}
		if t.Failed() {
			return
		}
		assertMigratedOnce(t, b.raw(t, loc))
		// Each replica works on the shared schema.
		for i, st := range stores {
			mustCreateClient(t, st, fmt.Sprintf("client-%d", i), "eng")
		}
		if got, _ := stores[0].ListClients(context.Background()); len(got) != replicas {
			t.Errorf("replica 0 sees %d clients, want %d", len(got), replicas)
		}
	})
}

// TestReplicasShareState opens one database twice, as two gateway replicas
// do: a key revoked through one is revoked for the other, and usage written
// by both is reported together.
func TestReplicasShareState(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		a, loc := openNew(t, b)
		other := openAt(t, b, loc)
		mustCreateClient(t, a, "alice", "eng")
		k := testKey("k1", "alice", "sk-sl-AAAAsecret1")
		if err := a.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := other.RevokeKey(ctx, "k1", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		key, _, err := a.KeyByHash(ctx, k.Hash)
		if err != nil || key.Active() {
			t.Errorf("after a revocation through the other replica: key %+v, %v; want revoked", key, err)
		}
		if err := a.InsertUsage(ctx, []UsageEvent{event("ra", "alice", "eng", "m", t0, 1, 1)}); err != nil {
			t.Fatal(err)
		}
		if err := other.InsertUsage(ctx, []UsageEvent{event("rb", "alice", "eng", "m", t0, 2, 2)}); err != nil {
			t.Fatal(err)
		}
		rows, err := a.Report(ctx, ReportQuery{GroupBy: GroupByClient})
		if err != nil || len(rows) != 1 || rows[0].Requests != 2 || rows[0].TotalTokens != 6 {
			t.Errorf("Report = %+v, %v; want both replicas' requests", rows, err)
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		loc := b.newDB(t)
		st, err := b.open(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Close()
		if _, err := b.raw(t, loc).Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
			t.Fatal(err)
		}
		_, err = b.open(ctx, loc)
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("open on a newer schema = %v, want an error saying it is newer", err)
		}
	})
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, DriverSQLite, sqliteBackend.newDB(t))
	if err != nil {
		t.Fatalf("Open(sqlite) = %v", err)
	}
	_ = st.Close()
	for _, tt := range []struct{ driver, dsn string }{
		{"mysql", "x"},
		{DriverSQLite, ""},
		{DriverPostgres, ""},
	} {
		if _, err := Open(ctx, tt.driver, tt.dsn); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%q, %q) = %v, want ErrInvalid", tt.driver, tt.dsn, err)
		}
	}
}

// TestOpenPostgresKeepsPasswordOutOfErrors: the error of a failed connection
// ends up in logs, so it must name the server but not the password.
func TestOpenPostgresKeepsPasswordOutOfErrors(t *testing.T) {
	u, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "wrong-Pa55word-0xdeadbeef"
	u.User = url.UserPassword(u.User.Username(), secret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = OpenPostgres(ctx, u.String())
	if err == nil {
		t.Fatal("OpenPostgres with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), u.Hostname()) {
		t.Errorf("error = %q: want the host named and the password absent", err)
	}
}

func TestMigrationsRenderForEveryDialect(t *testing.T) {
	migrations, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []dialect{sqliteDialect, postgresDialect} {
		for _, m := range migrations {
			out, err := d.render(m.sql)
			if err != nil {
				t.Errorf("%s: %s: %v", d.name, m.name, err)
			}
			if strings.Contains(out, "{{") {
				t.Errorf("%s: %s: a placeholder was left: %s", d.name, m.name, out)
			}
		}
	}
	tests := []struct {
		in, sqlite, postgres string
	}{
		{"data {{bytes}} NOT NULL", "data BLOB NOT NULL", "data BYTEA NOT NULL"},
		{"id {{ serial_pk }},", "id INTEGER PRIMARY KEY AUTOINCREMENT,", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"},
	}
	for _, tt := range tests {
		if got, _ := sqliteDialect.render(tt.in); got != tt.sqlite {
			t.Errorf("sqlite render(%q) = %q, want %q", tt.in, got, tt.sqlite)
		}
		if got, _ := postgresDialect.render(tt.in); got != tt.postgres {
			t.Errorf("postgres render(%q) = %q, want %q", tt.in, got, tt.postgres)
		}
	}
	if _, err := sqliteDialect.render("x {{blob}}"); err == nil || !strings.Contains(err.Error(), "blob") {
		t.Errorf("render of an unknown placeholder = %v, want an error naming it", err)
	}
}

// TestPlaceholderTypesWork creates a table with every placeholder in each
// real database, so that a dialect's SQL for them is known to be accepted.
func TestPlaceholderTypesWork(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, loc := openNew(t, b)
		_ = st
		d := map[string]dialect{"sqlite": sqliteDialect, "postgres": postgresDialect}[b.name]
		ddl, err := d.render(`CREATE TABLE placeholder_check (id {{serial_pk}}, data {{bytes}} NOT NULL)`)
		if err != nil {
			t.Fatal(err)
		}
		db := b.raw(t, loc)
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
		for _, data := range [][]byte{{0, 1, 2, 255}, {'x'}} {
			if _, err := db.Exec(`INSERT INTO placeholder_check (data) VALUES ($1)`, data); err != nil {
				t.Fatal(err)
			}
		}
		var (
			id   int64
			data []byte
		)
		if err := db.QueryRow(`SELECT id, data FROM placeholder_check ORDER BY id LIMIT 1`).Scan(&id, &data); err != nil {
			t.Fatal(err)
		}
		if id < 1 || !bytes.Equal(data, []byte{0, 1, 2, 255}) {
			t.Errorf("first row = %d, %q; want a generated id and the bytes back", id, data)
		}
	})
}

func event(reqID, client, dept, model string, at time.Time, prompt, completion int64) UsageEvent {
	return UsageEvent{
		Time: at, RequestID: reqID, ClientID: client, Department: dept, KeyID: "k-" + client,
		Model: model, Endpoint: "/v1/chat/completions", Status: 200,
		PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion,
		CostNanos: (prompt + completion) * 3, LatencyMS: 12, UsageSource: UsageUpstream,
	}
}

func TestReport(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		from, to := t0, t0.Add(24*time.Hour)
		events := []UsageEvent{
			event("before", "alice", "eng", "gpt-4o", from.Add(-time.Nanosecond), 1000, 1000),
			event("first", "alice", "eng", "gpt-4o", from, 10, 5),
			event("r2", "bob", "eng", "gpt-4o-mini", from.Add(time.Hour), 20, 10),
			event("r3", "carol", "sales", "gpt-4o", from.Add(2*time.Hour), 30, 0),
			event("last", "carol", "sales", "gpt-4o-mini", to.Add(-time.Nanosecond), 1, 1),
			event("at-end", "carol", "sales", "gpt-4o", to, 1000, 1000),
		}
		// Kept in the ledger, but not usage: a refused request that named no
		// model, a model listing and a model lookup.
		denied := UsageEvent{Time: from.Add(3 * time.Hour), RequestID: "denied", Status: 401, Code: "invalid_api_key"}
		listing := UsageEvent{Time: from.Add(3 * time.Hour), RequestID: "listing", ClientID: "alice", Department: "eng",
			Endpoint: "/v1/models", Status: 200}
		lookup := UsageEvent{Time: from.Add(3 * time.Hour), RequestID: "lookup", ClientID: "alice", Department: "eng",
			Model: "gpt-4o", Endpoint: "/v1/models/{id}", Status: 200}
		if err := st.InsertUsage(ctx, append(events, denied, listing, lookup)); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			groupBy string
			want    []ReportRow
		}{
			{GroupByDepartment, []ReportRow{
				{Group: "eng", Requests: 2, PromptTokens: 30, CompletionTokens: 15, TotalTokens: 45, CostNanos: 135},
				{Group: "sales", Requests: 2, PromptTokens: 31, CompletionTokens: 1, TotalTokens: 32, CostNanos: 96},
			}},
			{GroupByClient, []ReportRow{
				{Group: "alice", Requests: 1, PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CostNanos: 45},
				{Group: "bob", Requests: 1, PromptTokens: 20, CompletionTokens: 10, TotalTokens: 30, CostNanos: 90},
				{Group: "carol", Requests: 2, PromptTokens: 31, CompletionTokens: 1, TotalTokens: 32, CostNanos: 96},
			}},
			{GroupByModel, []ReportRow{
				{Group: "gpt-4o", Requests: 2, PromptTokens: 40, CompletionTokens: 5, TotalTokens: 45, CostNanos: 135},
				{Group: "gpt-4o-mini", Requests: 2, PromptTokens: 21, CompletionTokens: 11, TotalTokens: 32, CostNanos: 96},
			}},
		}
		for _, tt := range tests {
			t.Run(tt.groupBy, func(t *testing.T) {
				got, err := st.Report(ctx, ReportQuery{From: from, To: to, GroupBy: tt.groupBy})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Report =\n%+v\nwant\n%+v", got, tt.want)
				}
			})
		}

		t.Run("open range counts everything", func(t *testing.T) {
			got, err := st.Report(ctx, ReportQuery{GroupBy: GroupByDepartment})
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, r := range got {
				n += r.Requests
			}
			if n != 6 {
				t.Errorf("requests over all time = %d, want the 6 for a model", n)
			}
		})

		t.Run("bad queries", func(t *testing.T) {
			for _, q := range []ReportQuery{
				{GroupBy: "tier"},
				{GroupBy: GroupByClient, From: to, To: from},
			} {
				if _, err := st.Report(ctx, q); !errors.Is(err, ErrInvalid) {
					t.Errorf("Report(%+v) = %v, want ErrInvalid", q, err)
				}
			}
		})
	})
}

func TestUsageSince(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		since := t0.Add(12 * time.Hour)
		err := st.InsertUsage(ctx, []UsageEvent{
			event("old", "alice", "eng", "m", since.Add(-time.Nanosecond), 100, 100),
			event("a1", "alice", "eng", "m", since, 10, 5),
			event("a2", "alice", "eng", "m", since.Add(time.Minute), 1, 1),
			event("b1", "bob", "sales", "m", since.Add(time.Hour), 7, 0),
			{Time: since.Add(time.Hour), RequestID: "anon", Status: 401, Code: "invalid_api_key"},
			{Time: since.Add(time.Hour), RequestID: "limited", ClientID: "bob", Department: "sales", Status: 429, Code: "rate_limit_exceeded", UsageSource: UsageNone},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.UsageSince(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		want := []UsageTotal{
			{ClientID: "alice", Department: "eng", Requests: 2, TotalTokens: 17, CostNanos: 51},
			{ClientID: "bob", Department: "sales", Requests: 1, TotalTokens: 7, CostNanos: 21},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UsageSince =\n%+v\nwant\n%+v", got, want)
		}
	})
}

func TestInsertUsageRejectsBadBatchWhole(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		good := event("good", "alice", "eng", "m", t0, 1, 1)
		tests := []struct {
			name string
			bad  UsageEvent
		}{
			{"no request id", UsageEvent{Time: t0}},
			{"zero time", UsageEvent{RequestID: "r"}},
			{"negative tokens", UsageEvent{RequestID: "r", Time: t0, PromptTokens: -1}},
			{"unknown usage source", UsageEvent{RequestID: "r", Time: t0, UsageSource: "guessed"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := st.InsertUsage(ctx, []UsageEvent{good, tt.bad})
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("InsertUsage = %v, want ErrInvalid", err)
				}
			})
		}
		rows, err := st.Report(ctx, ReportQuery{GroupBy: GroupByClient})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 0 {
			t.Errorf("a rejected batch left rows behind: %+v", rows)
		}
	})
}

func TestConcurrentInsertUsageLosesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		const writers, batches, perBatch = 8, 25, 40
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for b := range batches {
					batch := make([]UsageEvent, perBatch)
					for i := range batch {
						batch[i] = event(fmt.Sprintf("w%d-b%d-%d", w, b, i), fmt.Sprintf("client-%d", w), "eng", "m", t0.Add(time.Duration(i)), 2, 1)
					}
					if err := st.InsertUsage(ctx, batch); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("InsertUsage: %v", err)
		}
		totals, err := st.UsageSince(ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(totals) != writers {
			t.Fatalf("UsageSince has %d clients, want %d", len(totals), writers)
		}
		for _, u := range totals {
			if u.Requests != batches*perBatch || u.TotalTokens != 3*batches*perBatch {
				t.Errorf("%s: %d requests, %d tokens; want %d, %d", u.ClientID, u.Requests, u.TotalTokens, batches*perBatch, 3*batches*perBatch)
			}
		}
	})
}

func TestInsertUsageSkipsKnownRequestIDs(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		batch := []UsageEvent{
			event("r1", "alice", "eng", "m", t0, 1, 1),
			event("r2", "alice", "eng", "m", t0, 2, 2),
		}
		if err := st.InsertUsage(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// A retry of the same batch, with one new event, as the ledger
		// sends after a commit whose acknowledgement was lost.
		if err := st.InsertUsage(ctx, append(batch, event("r3", "alice", "eng", "m", t0, 4, 4))); err != nil {
			t.Fatalf("retried batch: %v", err)
		}
		rows, err := st.Report(ctx, ReportQuery{GroupBy: GroupByClient})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Requests != 3 || rows[0].TotalTokens != 14 {
			t.Errorf("Report = %+v, want 3 requests and 14 tokens: each request once", rows)
		}
	})
}

// TestInsertUsageLargeBatches writes batches whose sizes need several
// statements (powers of two up to the largest), and checks every row landed.
func TestInsertUsageLargeBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		n := 0
		var want int64
		for _, size := range []int{1, 3, 255, 256, 257, 1000} {
			batch := make([]UsageEvent, size)
			for i := range batch {
				n++
				batch[i] = event(fmt.Sprintf("r%d", n), "alice", "eng", "m", t0.Add(time.Duration(n)), int64(n), 0)
				want += int64(n)
			}
			if err := st.InsertUsage(ctx, batch); err != nil {
				t.Fatalf("batch of %d: %v", size, err)
			}
		}
		rows, err := st.Report(ctx, ReportQuery{GroupBy: GroupByClient})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Requests != int64(n) || rows[0].PromptTokens != want {
			t.Errorf("Report = %+v, want %d requests and %d prompt tokens", rows, n, want)
		}
	})
}

func TestUsageWindows(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		// A restart at 10:00:30 on 2026-11-27 rebuilds the month, the day
		// and the last minute.
		now := time.Date(2026, 11, 27, 10, 0, 30, 0, time.UTC)
		month := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		minute := now.Add(-time.Minute)
		moved := event("moved", "bob", "sales", "m", day.Add(time.Hour), 1, 1) // bob moved to ops today
		moved.Department = "ops"
		// Two of alice's requests came with her key k-ci, which has limits
		// of its own.
		aDay, aMinute := event("a-day", "alice", "eng", "m", day, 10, 0), event("a-minute", "alice", "eng", "m", minute, 1, 0)
		aDay.KeyID, aMinute.KeyID = "k-ci", "k-ci"
		err := st.InsertUsage(ctx, []UsageEvent{
			event("last-month", "alice", "eng", "m", month.Add(-time.Nanosecond), 1000, 1000),
			event("a-month", "alice", "eng", "m", month, 100, 0),
			aDay,
			aMinute,
			event("b-month", "bob", "sales", "m", month.Add(48*time.Hour), 20, 0),
			moved,
			event("c-minute", "carol", "eng", "m", now.Add(-time.Second), 5, 0),
			{Time: now.Add(-time.Second), RequestID: "limited", ClientID: "alice", Department: "eng", Status: 429, Code: "rate_limit_exceeded", UsageSource: UsageNone},
			{Time: now.Add(-time.Second), RequestID: "anon", Status: 401, Code: "invalid_api_key"},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.UsageWindows(ctx, month, day, minute)
		if err != nil {
			t.Fatal(err)
		}
		u := func(requests, tokens int64) Usage {
			return Usage{Requests: requests, TotalTokens: tokens, CostNanos: 3 * tokens}
		}
		want := []ScopeUsage{
			{ScopeClient, "alice", []Usage{u(3, 111), u(2, 11), u(1, 1)}},
			{ScopeClient, "bob", []Usage{u(2, 22), u(1, 2), u(0, 0)}},
			{ScopeClient, "carol", []Usage{u(1, 5), u(1, 5), u(1, 5)}},
			{ScopeDepartment, "eng", []Usage{u(4, 116), u(3, 16), u(2, 6)}},
			{ScopeDepartment, "ops", []Usage{u(1, 2), u(1, 2), u(0, 0)}},
			{ScopeDepartment, "sales", []Usage{u(1, 20), u(0, 0), u(0, 0)}},
			{ScopeKey, "k-alice", []Usage{u(1, 100), u(0, 0), u(0, 0)}},
			{ScopeKey, "k-bob", []Usage{u(2, 22), u(1, 2), u(0, 0)}},
			{ScopeKey, "k-carol", []Usage{u(1, 5), u(1, 5), u(1, 5)}},
			{ScopeKey, "k-ci", []Usage{u(2, 11), u(2, 11), u(1, 1)}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UsageWindows =\n%+v\nwant\n%+v", got, want)
		}

		// A minute window that reaches into last month widens the scan.
		early, err := st.UsageWindows(ctx, month, month.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if early[0].ID != "alice" || early[0].Windows[1].TotalTokens != 2111 {
			t.Errorf("alice since a minute before the month = %+v, want 2111 tokens", early[0])
		}

		for _, since := range [][]time.Time{nil, make([]time.Time, MaxUsageWindows+1)} {
			if _, err := st.UsageWindows(ctx, since...); !errors.Is(err, ErrInvalid) {
				t.Errorf("UsageWindows(%d windows) = %v, want ErrInvalid", len(since), err)
			}
		}
	})
}

func TestUsageSeries(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		err := st.InsertUsage(ctx, []UsageEvent{
			event("before", "alice", "eng", "m", day.Add(-time.Nanosecond), 1000, 0),
			event("e1", "alice", "eng", "m", day, 1, 0),
			event("e2", "bob", "eng", "m", day.Add(59*time.Minute), 2, 0),
			event("s1", "carol", "sales", "m", day.Add(30*time.Minute), 4, 0),
			event("e3", "alice", "eng", "m", day.Add(5*time.Hour), 8, 0),
			event("next-day", "alice", "eng", "m", day.Add(25*time.Hour), 16, 0),
			event("after", "alice", "eng", "m", day.Add(48*time.Hour), 1000, 0),
		})
		if err != nil {
			t.Fatal(err)
		}
		p := func(start time.Time, group string, requests, tokens int64) SeriesPoint {
			return SeriesPoint{Start: start, ReportRow: ReportRow{Group: group, Requests: requests,
				PromptTokens: tokens, TotalTokens: tokens, CostNanos: 3 * tokens}}
		}
		tests := []struct {
			name string
			q    SeriesQuery
			want []SeriesPoint
		}{
			{"hourly by department", SeriesQuery{From: day, To: day.Add(48 * time.Hour), Bucket: time.Hour, GroupBy: GroupByDepartment}, []SeriesPoint{
				p(day, "eng", 2, 3),
				p(day, "sales", 1, 4),
				p(day.Add(5*time.Hour), "eng", 1, 8),
				p(day.Add(25*time.Hour), "eng", 1, 16),
			}},
			// From in the middle of a day: buckets still start at UTC midnight.
			{"daily from mid-day", SeriesQuery{From: day.Add(40 * time.Minute), To: day.Add(48 * time.Hour), Bucket: 24 * time.Hour, GroupBy: GroupByDepartment}, []SeriesPoint{
				p(day, "eng", 2, 10),
				p(day.Add(24*time.Hour), "eng", 1, 16),
			}},
			{"daily by client", SeriesQuery{From: day, To: day.Add(24 * time.Hour), Bucket: 24 * time.Hour, GroupBy: GroupByClient}, []SeriesPoint{
				p(day, "alice", 2, 9),
				p(day, "bob", 1, 2),
				p(day, "carol", 1, 4),
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := st.UsageSeries(ctx, tt.q)
				if err != nil {
					t.Fatal(err)
				}
				for _, g := range got {
					if g.Start.Location() != time.UTC {
						t.Errorf("bucket start %v is not in UTC", g.Start)
					}
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("UsageSeries =\n%+v\nwant\n%+v", got, tt.want)
				}
			})
		}
		for _, q := range []SeriesQuery{
			{To: day, Bucket: time.Hour, GroupBy: GroupByModel},
			{From: day, Bucket: time.Hour, GroupBy: GroupByModel},
			{From: day, To: day.Add(time.Hour), Bucket: time.Second, GroupBy: GroupByModel},
			{From: day, To: day.Add(time.Hour), Bucket: time.Hour, GroupBy: "tier"},
		} {
			if _, err := st.UsageSeries(ctx, q); !errors.Is(err, ErrInvalid) {
				t.Errorf("UsageSeries(%+v) = %v, want ErrInvalid", q, err)
			}
		}
	})
}

func TestDenialCounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		denied := func(id, code string, at time.Time) UsageEvent {
			return UsageEvent{Time: at, RequestID: id, ClientID: "alice", Department: "eng", Status: 429, Code: code}
		}
		err := st.InsertUsage(ctx, []UsageEvent{
			event("ok", "alice", "eng", "m", t0, 1, 1),
			denied("b1", "budget_exceeded", t0),
			denied("r1", "rate_limit_exceeded", t0),
			denied("r2", "rate_limit_exceeded", t0.Add(time.Hour)),
			denied("p1", "pii_detected", t0),
			denied("late", "pii_detected", t0.Add(24*time.Hour)),
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.DenialCounts(ctx, t0, t0.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := []DenialCount{{"rate_limit_exceeded", 2}, {"budget_exceeded", 1}, {"pii_detected", 1}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("DenialCounts = %+v, want %+v", got, want)
		}
		// Ties are ordered by code.
		all, err := st.DenialCounts(ctx, time.Time{}, time.Time{})
		want = []DenialCount{{"pii_detected", 2}, {"rate_limit_exceeded", 2}, {"budget_exceeded", 1}}
		if err != nil || !reflect.DeepEqual(all, want) {
			t.Errorf("DenialCounts over all time = %+v, %v; want %+v", all, err, want)
		}
	})
}

// BenchmarkInsertUsage measures one ledger batch of 256 events, the
// ledger's default batch size, with times that advance and random request
// ids, as the gateway produces them. ns/event and events/s are the figures
// to compare between databases.
func BenchmarkInsertUsage(b *testing.B) {
	for _, be := range []backend{sqliteBackend, postgresBackend} {
		b.Run(be.name, func(b *testing.B) {
			st, _ := openNew(b, be)
			batch := make([]UsageEvent, 256)
			n := 0
			for b.Loop() {
				for i := range batch {
					n++
					id := sha256.Sum256([]byte(strconv.Itoa(n)))
					batch[i] = event(hex.EncodeToString(id[:8]), "alice", "eng", "gpt-4o", t0.Add(time.Duration(n)*time.Millisecond), 100, 50)
				}
				if err := st.InsertUsage(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestCostMigratesToNanos opens a ledger written when cost was kept in
// micro-dollars (schema version 2): every stored cost converts exactly.
func TestCostMigratesToNanos(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		loc := b.newDB(t)
		if err := os.MkdirAll(filepath.Dir(loc), 0o700); err != nil && !strings.Contains(loc, "://") {
			t.Fatal(err)
		}
		raw := b.raw(t, loc)
		d := sqliteDialect
		if b.name == "postgres" {
			d = postgresDialect
		}
		migrations, err := loadMigrations()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := raw.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, `CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		for _, m := range migrations[:2] {
			text, err := d.render(m.sql)
			if err != nil {
				t.Fatal(err)
			}
			if err := apply(ctx, conn, m.version, text); err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
		}
		_, err = conn.ExecContext(ctx, `INSERT INTO usage_events (occurred_at, request_id, client_id, department, key_id, model,
			endpoint, stream, prompt_tokens, completion_tokens, total_tokens, cost_micros, latency_ms, status, code, findings, usage_source)
			VALUES ($1, 'r1', 'alice', 'eng', 'k1', 'gpt-4o', '/v1/chat/completions', FALSE, 10, 5, 15, 1234567, 3, 200, '', '', 'upstream')`,
			nanos(t0))
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		st := openAt(t, b, loc)
		rows, err := st.Report(ctx, ReportQuery{GroupBy: GroupByClient})
		if err != nil || len(rows) != 1 || rows[0].CostNanos != 1_234_567_000 {
			t.Fatalf("after the migration: %+v, %v; want $1.234567 as 1234567000 nano-dollars", rows, err)
		}
		assertMigratedOnce(t, raw)
	})
}

func TestClientUpdateDisableDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		mustCreateClient(t, st, "alice", "eng")
		k := testKey("k1", "alice", "sk-sl-AAAAsecret1")
		if err := st.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}

		if err := st.UpdateClient(ctx, Client{ID: "alice", Department: "research", Tier: "premium", Labels: map[string]string{"env": "prod"}}); err != nil {
			t.Fatal(err)
		}
		c, err := st.GetClient(ctx, "alice")
		if err != nil || c.Department != "research" || c.Tier != "premium" || c.Labels["env"] != "prod" || !c.CreatedAt.Equal(t0) {
			t.Fatalf("after update: %+v, %v", c, err)
		}
		if err := st.UpdateClient(ctx, Client{ID: "nobody", Department: "x", Tier: "standard"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("updating an unknown client: %v", err)
		}

		if err := st.DisableClient(ctx, "alice", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, c, err := st.KeyByHash(ctx, k.Hash); err != nil || !c.DisabledAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("a disabled client's key: %+v, %v", c, err)
		}
		if err := st.DisableClient(ctx, "alice", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if c, _ := st.GetClient(ctx, "alice"); !c.DisabledAt.IsZero() {
			t.Fatalf("enabled again: %+v", c)
		}

		if err := st.DeleteClient(ctx, "alice", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.KeyByHash(ctx, k.Hash); !errors.Is(err, ErrNotFound) {
			t.Errorf("a deleted client's key was found: %v", err)
		}
		if _, err := st.GetClient(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a deleted client was found: %v", err)
		}
		if cs, _ := st.ListClients(ctx); len(cs) != 0 {
			t.Errorf("a deleted client is listed: %+v", cs)
		}
		if err := st.CreateClient(ctx, Client{ID: "alice", Department: "eng", Tier: "standard"}); !errors.Is(err, ErrExists) {
			t.Errorf("a deleted client's id was taken again: %v", err)
		}
		if err := st.DeleteClient(ctx, "alice", t0.Add(3*time.Hour)); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting twice: %v", err)
		}
	})
}

func TestAuditEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		for i, ev := range []AuditEvent{
			{Time: t0, Actor: "alice", Action: "client.create", Target: "bot", Detail: map[string]any{"after": map[string]any{"tier": "standard"}}},
			{Time: t0.Add(time.Minute), Actor: "cli", Action: "key.revoke", Target: "key_1"},
			{Time: t0.Add(2 * time.Minute), Actor: "alice", Action: "client.update", Target: "bot",
				Detail: map[string]any{"before": map[string]any{"tier": "standard"}, "after": map[string]any{"tier": "premium"}}},
		} {
			if err := st.InsertAudit(ctx, ev); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		all, err := st.Audit(ctx, AuditQuery{})
		if err != nil || len(all) != 3 || all[0].Action != "client.update" || all[2].Action != "client.create" {
			t.Fatalf("Audit = %+v, %v; want three events, newest first", all, err)
		}
		if got := all[0].Detail["after"].(map[string]any)["tier"]; got != "premium" {
			t.Errorf("detail %+v", all[0].Detail)
		}
		mine, _ := st.Audit(ctx, AuditQuery{Actor: "cli"})
		if len(mine) != 1 || mine[0].Target != "key_1" {
			t.Errorf("by actor: %+v", mine)
		}
		window, _ := st.Audit(ctx, AuditQuery{From: t0.Add(30 * time.Second), To: t0.Add(90 * time.Second)})
		if len(window) != 1 {
			t.Errorf("in a window: %+v", window)
		}
		if err := st.InsertAudit(ctx, AuditEvent{Action: "x"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("an event without an actor: %v", err)
		}
	})
}

// Each request is kept with the kind of upstream that answered it, and a
// report sums them by it: what each provider was paid, whichever models
// and deployments it served.
func TestReportByUpstreamType(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := openNew(t, b)
		ctx := context.Background()
		served := func(id, model, deployment, typ string, prompt, completion int64) UsageEvent {
			ev := event(id, "alice", "eng", model, t0.Add(time.Minute), prompt, completion)
			ev.Deployment, ev.UpstreamType = deployment, typ
			return ev
		}
		events := []UsageEvent{
			served("a", "claude", "bedrock-eu/claude", "bedrock", 10, 5),
			served("b", "claude", "anthropic/claude", "anthropic", 20, 10),
			served("c", "gpt-4o", "bedrock-us/claude", "bedrock", 30, 0),
			// Refused before any upstream was called.
			served("d", "gpt-4o", "", "", 0, 0),
		}
		if err := st.InsertUsage(ctx, events); err != nil {
			t.Fatal(err)
		}
		got, err := st.Report(ctx, ReportQuery{GroupBy: GroupByUpstreamType})
		if err != nil {
			t.Fatal(err)
		}
		want := []ReportRow{
			{Group: "", Requests: 1},
			{Group: "anthropic", Requests: 1, PromptTokens: 20, CompletionTokens: 10, TotalTokens: 30, CostNanos: 90},
			{Group: "bedrock", Requests: 2, PromptTokens: 40, CompletionTokens: 5, TotalTokens: 45, CostNanos: 135},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Report by upstream type =\n%+v\nwant\n%+v", got, want)
		}
	})
}
