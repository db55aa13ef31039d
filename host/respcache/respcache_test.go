package respcache

import (
	"context"
	"testing"
	"time"
)

func TestKeyIgnoresKeyOrderAndSpacing(t *testing.T) {
	a, err := Key("client:a", "/v1/chat/completions", "m", []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Key("client:a", "/v1/chat/completions", "m", []byte("{ \"temperature\": 0.2,\n \"messages\":[{\"content\":\"hi\",\"role\":\"user\"}], \"model\":\"m\"}"))
	if a != b {
		t.Fatal("the same request in another key order has another key")
	}
	for name, k := range map[string][3]string{
		"scope":     {"client:b", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2}`},
		"endpoint":  {"client:a", "/v1/responses", `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2}`},
		"parameter": {"client:a", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.3}`},
		"text":      {"client:a", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0.2}`},
	} {
		other, err := Key(k[0], k[1], "m", []byte(k[2]))
		if err != nil || other == a {
			t.Errorf("a request with another %s has the same key (err %v)", name, err)
		}
	}
	if _, err := Key("s", "e", "m", []byte(`{"a":1} {"b":2}`)); err == nil {
		t.Error("two documents read as one")
	}
}

func TestEntryBoundAndExpiry(t *testing.T) {
	c, err := New(Options{MaxBytes: 1 << 20, MaxEntryBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if c.Set(ctx, "big", Entry{Body: make([]byte, 101)}, time.Minute) {
		t.Error("an entry over the bound was kept")
	}
	if _, ok := c.Get(ctx, "big"); ok {
		t.Error("an entry over the bound was served")
	}
	c.Set(ctx, "k", Entry{Chunks: [][]byte{[]byte("a"), []byte("b")}}, 1500*time.Millisecond)
	e, ok := c.Get(ctx, "k")
	if !ok || len(e.Chunks) != 2 || string(e.Chunks[1]) != "b" {
		t.Fatalf("got %+v, %v", e, ok)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, ok := c.Get(ctx, "k"); ok {
		t.Error("an expired entry was served")
	}
}

func TestUnreachableRedisIsAMiss(t *testing.T) {
	c, err := New(Options{RedisURL: "redis://127.0.0.1:1/0", Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Set(context.Background(), "k", Entry{Body: []byte("{}")}, time.Minute)
	if _, ok := c.Get(context.Background(), "k"); ok {
		t.Error("a hit without any store")
	}
}
