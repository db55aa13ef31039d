// Package redact hides what the guard plugins found, and puts it back.
//
// # Request phase
//
// [Vault.Redact] replaces each finding of the types the policy names with a
// placeholder such as [EMAIL_1] before the request is forwarded, so that the
// model never sees the value. The same value of the same type gets the same
// placeholder throughout the request, so the model can still tell two
// addresses apart. The Vault remembers each value for the life of the
// request, in memory only: it is never logged, recorded or sent, and every
// way of printing it shows a count of placeholders, not a value.
//
// # Restore
//
// When the policy asks for it, [Vault.Restore] puts the values back into a
// whole reply and a [StreamRestorer] into a streamed one, delta by delta, so
// that the user does not notice. A placeholder split across deltas ("[EMA",
// "IL_1]") is restored; only a tail that may still become a placeholder is
// held back, at most the longest placeholder's length. Placeholders the
// model made up ([EMAIL_7]) are left as they are.
//
// # Response phase
//
// [ScanTexts] (a whole reply) and [StreamScanner] (a stream) run
// response-phase plugins over the model's output; a [DecideFunc] says, per
// finding, whether it is allowed, masked with a placeholder that is never
// restored, or blocks the reply. A stream is scanned in batches of
// [ScanOptions.Batch] new bytes, each scan starting [ScanOptions.Window]
// bytes before the previous scan's end, and text is released only up to
// Window bytes before what has been scanned. So a finding of up to Window
// bytes is never missed where chunks split it, and none of its bytes reaches
// the caller before it has been judged. The price is latency: the first text
// goes out after Window+Batch bytes of reply (384 bytes, about 100 tokens,
// by default), then in steps of about Batch bytes.
//
// Scanning comes before restoring, never after: plugins judge what the model
// wrote, and the caller's own values, put back by restoring, are not masked
// or blocked as though the model had produced them. A value the model
// writes out itself is judged like any other text. [ReplyStream] puts the
// two in that order for each choice of a reply.
//
// # Limits
//
//   - Every text of a reply is scanned and restored, tool-call arguments
//     included (the gateway hands each text to this package, see host/api's
//     collect.go). In a stream, a tool call's arguments arrive as JSON
//     fragments and are scanned as text: a placeholder lands inside a JSON
//     string and keeps the arguments valid, but a finding that is a bare
//     JSON number is masked as it stands and leaves them invalid.
//   - In a stream, a finding longer than Window (a PEM private key, a JWT
//     with many claims) is caught only if one scan of Window+Batch bytes
//     holds it whole; raise Window for policies that must stop those.
//   - A scan sees the Window bytes before the new text and no more, and
//     the window may start mid-word. A detector that needs context further
//     back (a keyword long before a number) can miss there what it finds in
//     the whole reply; one that matches a word cut at the window's start
//     makes the stream mask more than a whole scan would, never less.
package redact
