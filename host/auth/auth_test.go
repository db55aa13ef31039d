package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateClient(context.Background(), store.Client{ID: "app", Department: "research", Tier: "standard"}); err != nil {
		t.Fatal(err)
	}
	return st
}

func newKey(t *testing.T, st store.Store) (string, store.Key) {
	t.Helper()
	secret, k, err := NewKey("app")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return secret, k
}

func TestNewKeyIsRandomAndStoredHashed(t *testing.T) {
	a, ka, _ := NewKey("app")
	b, _, _ := NewKey("app")
	if a == b || !strings.HasPrefix(a, KeyPrefix) || len(a) != len(KeyPrefix)+keyRandomChars {
		t.Fatalf("keys %q and %q", a, b)
	}
	if ka.Hash != sha256.Sum256([]byte(a)) {
		t.Fatal("the stored hash is not the key's SHA-256")
	}
	if !strings.HasPrefix(a, ka.Prefix) || len(ka.Prefix) > store.MaxKeyPrefix || len(ka.Prefix) >= len(a)/2 {
		t.Fatalf("display prefix %q must be a short start of the key", ka.Prefix)
	}
}

func TestAuthenticate(t *testing.T) {
	st := openStore(t)
	secret, k := newKey(t, st)
	a, err := New(st, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	id, err := a.Authenticate(ctx, secret)
	if err != nil || id.KeyID != k.ID || id.Client.ID != "app" || id.Client.Department != "research" {
		t.Fatalf("identity %+v, %v", id, err)
	}
	for _, bad := range []string{"", "sk-other", secret[:len(secret)-1] + "x", strings.ToUpper(secret), secret + "a"} {
		if _, err := a.Authenticate(ctx, bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("key %q: err = %v, want ErrInvalidKey", bad, err)
		}
	}
}

func TestRevocationHereIsImmediateElsewhereWithinTTL(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	here, kHere := newKey(t, st)
	elsewhere, kElsewhere := newKey(t, st)
	a, err := New(st, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, k := range []string{here, elsewhere} {
		if _, err := a.Authenticate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	a.cache.Wait() // ristretto makes a new entry visible only after its buffers drain

	// Another replica (or the CLI) revokes a key straight in the store: this
	// process keeps its cached context until the TTL runs out.
	if err := st.RevokeKey(ctx, kElsewhere.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, elsewhere); err != nil {
		t.Fatalf("a key revoked elsewhere should still be served from the cache within the TTL: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := a.Authenticate(ctx, elsewhere); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("after the TTL a key revoked elsewhere must fail, got %v", err)
	}

	// Revoking here, as accounts.Service does (the store, then Forget),
	// takes effect at once.
	if err := st.RevokeKey(ctx, kHere.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	a.Forget()
	if _, err := a.Authenticate(ctx, here); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("a key revoked here must fail at once, got %v", err)
	}
}

func TestKeyFromHeaders(t *testing.T) {
	cases := []struct{ authz, xkey, want string }{
		{"Bearer sk-1", "", "sk-1"},
		{"bearer  sk-1 ", "", "sk-1"},
		{"Basic abc", "sk-2", ""}, // a non-bearer Authorization is not a key, and wins
		{"", "sk-2", "sk-2"},
		{"", "", ""},
	}
	for _, c := range cases {
		if got := KeyFromHeaders([]byte(c.authz), []byte(c.xkey)); got != c.want {
			t.Errorf("KeyFromHeaders(%q, %q) = %q, want %q", c.authz, c.xkey, got, c.want)
		}
	}
}

// downStore fails every key lookup while down is set.
type downStore struct {
	store.Store
	down bool
}

func (d *downStore) KeyByHash(ctx context.Context, h [32]byte) (store.Key, store.Client, error) {
	if d.down {
		return store.Key{}, store.Client{}, errors.New("connection refused")
	}
	return d.Store.KeyByHash(ctx, h)
}

// TestKnownKeysOutliveTheCacheWhileTheStoreIsDown: a key the store
// confirmed keeps working past the cache's TTL while the store is
// unreachable, for StaleFor at most; an unknown key gets the error.
func TestKnownKeysOutliveTheCacheWhileTheStoreIsDown(t *testing.T) {
	st := &downStore{Store: openStore(t)}
	secret, k := newKey(t, st)
	other, _ := newKey(t, st)
	a, err := New(st, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	now := time.Now()
	a.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	st.down = true
	time.Sleep(50 * time.Millisecond) // the cache entry lapses
	id, err := a.Authenticate(ctx, secret)
	if err != nil || id.KeyID != k.ID || !a.StoreDown() || a.StaleServed() != 1 {
		t.Fatalf("a known key while the store is down: %+v, %v (down %v, stale %d)", id, err, a.StoreDown(), a.StaleServed())
	}
	if _, err := a.Authenticate(ctx, other); err == nil || errors.Is(err, ErrInvalidKey) {
		t.Fatalf("a key never confirmed while the store is down: %v, want the store's error", err)
	}
	now = now.Add(StaleFor + time.Second)
	if _, err := a.Authenticate(ctx, secret); err == nil {
		t.Fatal("a key confirmed longer than StaleFor ago was served while the store is down")
	}
	st.down = false
	if _, err := a.Authenticate(ctx, secret); err != nil || a.StoreDown() {
		t.Fatalf("after the store is back: %v (down %v)", err, a.StoreDown())
	}
}
