# README.md's `sluice config check` transcript: a configuration that names a
# plugin file not built yet, beside a policy cut short.
mkdir -p policies
cat > sluice.yaml <<'YAML'
plugins:
  - {name: pii, path: plugins/pii.wasm}
policy:
  dir: policies
YAML
printf 'package sluice\n\ndecision := {"allow": true\n' > policies/authz.rego
