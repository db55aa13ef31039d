package sluice.authz_test

import data.sluice.authz

token_tiers := {
	"strict": {"models": ["*"], "refuse_token_input": true},
	"open": {"models": ["*"]},
}

embeddings(tier, arrays) := {
	"client": {"id": "indexer", "department": "", "tier": tier, "labels": {}},
	"request": {
		"method": "POST", "path": "/v1/embeddings", "model": "text-embedding-3-small", "stream": false,
		"max_tokens": 0, "prompt_tokens": 12, "message_count": 1, "token_arrays": arrays, "headers": {},
	},
	"findings": [],
	"usage": {},
	"time": {"unix": 0, "rfc3339": "1970-01-01T00:00:00Z", "zone": "UTC", "weekday": "Thursday", "hour": 0, "minute": 0},
}

test_token_input_refused_where_the_tier_says if {
	d := authz.decision with input as embeddings("strict", 1) with data.sluice.tiers as token_tiers
	not d.allowed
	d.http_status == 400
	d.code == "token_input_not_allowed"
}

test_text_input_served_on_a_strict_tier if {
	d := authz.decision with input as embeddings("strict", 0) with data.sluice.tiers as token_tiers
	d.allowed
}

test_token_input_served_by_default if {
	d := authz.decision with input as embeddings("open", 2) with data.sluice.tiers as token_tiers
	d.allowed
}
