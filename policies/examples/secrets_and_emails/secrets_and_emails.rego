# Block secrets, redact emails: a credential in a prompt always blocks the
# request, whatever a tier's redact list says, while e-mail addresses from
# the departments that handle customers' mail are replaced by placeholders
# and the request goes on.
#
# Findings come from the pii plugin, which runs for tiers with
# pii_detection: true; these rules decide only what happens to what it finds.
package sluice.authz

# _secret_types are the pii plugin's types of credentials.
_secret_types := {
	"AWS_ACCESS_KEY",
	"GITHUB_TOKEN",
	"SLACK_TOKEN",
	"STRIPE_KEY",
	"GOOGLE_API_KEY",
	"OPENAI_KEY",
	"PRIVATE_KEY",
	"JWT",
}

_email_redacting_departments := {"sales", "support"}

block contains type if some type in _secret_types

redact contains "EMAIL" if input.client.department in _email_redacting_departments
