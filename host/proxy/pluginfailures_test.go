package proxy

import (
	"strconv"
	"testing"
	"time"
)

// A client's plugin failures count for PluginFailureWindow and are then
// forgotten; the clients kept are bounded, and those with nothing left in
// the window make room for new ones.
func TestClientFailuresWindow(t *testing.T) {
	var f clientFailures
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for range 3 {
		f.add("mallory", t0)
	}
	f.add("", t0) // an unauthenticated request has no client to count against
	if n := f.count("mallory", t0.Add(time.Minute)); n != 3 {
		t.Errorf("a minute later: %d, want 3", n)
	}
	if n := f.count("alice", t0); n != 0 {
		t.Errorf("another client: %d, want 0", n)
	}
	if n := f.count("mallory", t0.Add(PluginFailureWindow+PluginFailureWindow/failureSlices)); n != 0 {
		t.Errorf("past the window: %d, want 0", n)
	}

	for i := range maxFailingClients - 1 {
		f.add("client-"+strconv.Itoa(i), t0)
	}
	later := t0.Add(2 * PluginFailureWindow)
	f.add("newcomer", later) // the table is full, of clients whose failures are old
	if n := f.count("newcomer", later); n != 1 {
		t.Errorf("a new client when the table is full of old ones: %d, want 1", n)
	}
	if len(f.clients) != 1 {
		t.Errorf("%d clients kept, want only the newcomer", len(f.clients))
	}
}
