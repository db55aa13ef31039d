package policy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Identity kinds: how the caller authenticated.
const (
	IdentityKey   = "key"
	IdentityToken = "token"
)

// Identity is how the caller authenticated, as input.identity: by a key
// (its id, name and tags) or by an identity token (its issuer, subject and
// verified claims).
type Identity struct {
	Kind    string            `json:"kind"`
	KeyID   string            `json:"key_id"`
	KeyName string            `json:"key_name"`
	KeyTags map[string]string `json:"tags"`
	Issuer  string            `json:"issuer"`
	Subject string            `json:"subject"`
	// Claims are the token's verified claims, already bounded in size.
	Claims map[string]any `json:"claims"`
	// DroppedClaims counts the claims left out for their size.
	DroppedClaims int `json:"dropped_claims"`
	// LogClaims are the claims whose values the decision log writes as
	// they are. It writes every other claim's value as a keyed hash: claims
	// carry e-mail addresses, names and strings the caller's provider let
	// it choose.
	LogClaims []string `json:"-"`

	// built is the input term of an Identity used for many requests; see
	// Shared.
	built *ast.Term
}

// Shared builds id's term now, so that every input it is put in shares it:
// for an identity reused across requests, such as a cached token's. id
// must not change afterwards.
func (id *Identity) Shared() *Identity {
	id.built = id.build()
	return id
}

var (
	keyIdentity      = ast.StringTerm("identity")
	keyKind          = ast.StringTerm("kind")
	keyKeyID         = ast.StringTerm("key_id")
	keyKeyName       = ast.StringTerm("key_name")
	keyTags          = ast.StringTerm("tags")
	keyIssuer        = ast.StringTerm("issuer")
	keySubject       = ast.StringTerm("subject")
	keyClaims        = ast.StringTerm("claims")
	keyDroppedClaims = ast.StringTerm("dropped_claims")
)

// term is never null: a policy of a request without identity (a dry run)
// finds input.identity.kind undefined, not an error.
func (id *Identity) term() *ast.Term {
	if id == nil {
		return ast.InternedEmptyObject
	}
	if id.built != nil {
		return id.built
	}
	return id.build()
}

func (id *Identity) build() *ast.Term {
	if id.Kind == IdentityKey {
		tags := ast.NewObjectWithCapacity(len(id.KeyTags))
		for k, v := range id.KeyTags {
			tags.Insert(stringTerm(k), stringTerm(v))
		}
		return ast.ObjectTerm(
			ast.Item(keyKind, stringTerm(id.Kind)),
			ast.Item(keyKeyID, stringTerm(id.KeyID)),
			ast.Item(keyKeyName, stringTerm(id.KeyName)),
			ast.Item(keyTags, ast.NewTerm(tags)),
		)
	}
	claims, err := ast.InterfaceToValue(id.Claims)
	if err != nil || id.Claims == nil {
		claims = ast.NewObject()
	}
	return ast.ObjectTerm(
		ast.Item(keyKind, stringTerm(id.Kind)),
		ast.Item(keyIssuer, stringTerm(id.Issuer)),
		ast.Item(keySubject, stringTerm(id.Subject)),
		ast.Item(keyClaims, ast.NewTerm(claims)),
		ast.Item(keyDroppedClaims, ast.InternedTerm(id.DroppedClaims)),
	)
}

// claimHashKey keys the hashes of claim values in the decision log. It is
// new at every start, so that a line cannot be matched against the hashes
// of guessed addresses; within one run, equal values hash alike.
var claimHashKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

// redactIdentity rewrites the identity of a logged input (JSON values):
// the subject and every claim not in logClaims become keyed hashes.
func redactIdentity(input any, logClaims []string) {
	in, _ := input.(map[string]any)
	id, _ := in["identity"].(map[string]any)
	if id == nil || id["kind"] != IdentityToken {
		return
	}
	if s, ok := id["subject"]; ok {
		id["subject"] = hashClaim(s)
	}
	claims, _ := id["claims"].(map[string]any)
	for _, name := range slices.Collect(maps.Keys(claims)) {
		if !slices.Contains(logClaims, name) {
			claims[name] = hashClaim(claims[name])
		}
	}
}

// hashClaim is "hmac:" and the first 16 bytes of the keyed hash of v's JSON.
func hashClaim(v any) string {
	b, _ := json.Marshal(v)
	m := hmac.New(sha256.New, claimHashKey)
	m.Write(b)
	return "hmac:" + hex.EncodeToString(m.Sum(nil)[:16])
}
