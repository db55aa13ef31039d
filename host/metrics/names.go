package metrics

// Metric names. The gen_ai_* ones are the OpenTelemetry GenAI semantic
// conventions' metrics as Prometheus names them (dots become underscores,
// the unit becomes a suffix); the rest are Sluice's own.
const (
	NameRequests             = "sluice_requests_total"
	NameTokens               = "sluice_tokens_total"
	NameCost                 = "sluice_cost_usd_total"
	NameStageDuration        = "sluice_stage_duration_seconds"
	NamePluginFailures       = "sluice_plugin_failures_total"
	NamePluginCancelled      = "sluice_plugin_scans_cancelled_total"
	NamePluginGuestSeconds   = "sluice_plugin_guest_seconds_total"
	NamePluginHealthy        = "sluice_plugin_healthy"
	NamePluginUnhealthy      = "sluice_plugin_unhealthy_total"
	NamePluginMemory         = "sluice_plugin_memory_reserved_bytes"
	NamePluginMemoryLimit    = "sluice_plugin_memory_limit_bytes"
	NamePluginMemoryRefused  = "sluice_plugin_memory_refused_total"
	NamePolicyErrors         = "sluice_policy_errors_total"
	NameUnauthenticated      = "sluice_unauthenticated_requests_total"
	NamePolicyReloads        = "sluice_policy_reloads_total"
	NameShadowDisagreements  = "sluice_policy_shadow_disagreements_total"
	NameShadowErrors         = "sluice_policy_shadow_errors_total"
	NameShadowReloads        = "sluice_policy_shadow_reloads_total"
	NameDecisionLogDropped   = "sluice_policy_decision_log_dropped_total"
	NameShadowDropped        = "sluice_policy_shadow_dropped_total"
	NameDecisionCache        = "sluice_policy_decision_cache_requests_total"
	NameAuthCache            = "sluice_auth_cache_requests_total"
	NameClaimsDropped        = "sluice_auth_token_claims_dropped_total"
	NameExhaustedCache       = "sluice_limits_exhausted_cache_requests_total"
	NameLimitsBackendErrors  = "sluice_limits_backend_errors_total"
	NameLedgerQueueDepth     = "sluice_ledger_queue_depth"
	NameKeysExpiringSoon     = "sluice_keys_expiring_soon"
	NameReady                = "sluice_ready"
	NameGenAIRequestDuration = "gen_ai_server_request_duration_seconds"
	NameGenAITokenUsage      = "gen_ai_client_token_usage"
)

// StageBuckets are the bounds of the stage latency histograms: from 5 µs
// (a cache hit, a policy decision answered from derived data) to 60 s (a
// long completion), about three per decade.
var StageBuckets = []float64{
	0.000005, 0.00001, 0.000025, 0.00005,
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
	10, 30, 60,
}

// GenAIDurationBuckets are the bucket boundaries the GenAI semantic
// conventions advise for gen_ai.server.request.duration.
var GenAIDurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}

// GenAITokenBuckets are the bucket boundaries the GenAI semantic conventions
// advise for gen_ai.client.token.usage.
var GenAITokenBuckets = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
