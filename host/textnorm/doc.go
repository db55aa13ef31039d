// Package textnorm gives guardrail scanners a normalised view of a text and
// maps what they find in it back to the original bytes.
//
// Attackers walk around a scanner by writing a value so that a model still
// reads it but a pattern no longer matches: 123\u200b-45-6789,
// １２３-４５-６７８９, user＠example.com, user&#64;example.com,
// user%40example.com, the base64 of "My SSN is 123-45-6789", an AWS key
// with a Cyrillic А. [Normalize] undoes these; the host hands plugins
// [Text.String] and maps each finding back with [Text.Original], so
// redaction masks exactly the bytes that were sent.
//
// # Steps, in order
//
//  1. Clean. Runs of invalid UTF-8 bytes, and U+FFFD (what a JSON decoder
//     makes of them), are dropped like invisible characters: a model that
//     reads bytes reads the value around them. Invisible characters are
//     dropped: zero-width space and
//     joiners, word joiner, BOM, soft hyphen, bidi controls, variation
//     selectors, Hangul fillers and the other format characters listed in
//     invisible. C0 and C1 controls other than tab, newline and carriage
//     return are dropped (vertical tab and form feed become a space, NEL a
//     newline). Tag characters (U+E0020–U+E007E) become the ASCII they
//     shadow, since some models read them.
//  2. NFKC, then per-character folds NFKC does not make: decimal digits of
//     any script become ASCII digits (by digit value, unicode.Nd), Unicode
//     dashes and minus signs become '-', remaining spaces ' ', line and
//     paragraph separators '\n', full stops of other scripts '.'. Combining
//     marks left on an ASCII letter or digit (1̲2̲3̲, keycaps) are dropped.
//  3. Look-alikes. In a word that holds ASCII letters, or whose letters are
//     all look-alikes, the Cyrillic and Greek letters of the lookAlike table
//     become the Latin letters they are drawn like (АКІА → AKIA).
//  4. Decode. Runs of %XX escapes (a whole UTF-8 character at a time,
//     leaving escapes that make no text), HTML character references
//     (numeric, and the named ones of namedEntities) and base64 (standard
//     or URL alphabet, padded or not, 16 characters or more) or hex (16
//     digits or more, optionally after 0x) runs that decode to text. An
//     escape is replaced by what it decodes to; a base64 or hex run is kept
//     and its decoded text appended after it and a space, so a JWT or a key
//     that merely looks like base64 is still seen raw. Escapes are decoded
//     in a pass of their own before the runs are read, so a token whose
//     dots or dashes are written as escapes (a JWT with &period;) is judged
//     whole.
//
// Why this order: every later step needs valid UTF-8, and an invisible
// character must be gone before NFKC so that it cannot keep a letter from
// its combining mark. NFKC comes before the folds so that they are written
// for one form of each character (it already makes fullwidth letters and
// digits, ＠, mathematical and circled letters ASCII). Look-alikes come
// after NFKC so that a word's letters are judged in that form. Decoding
// comes last so that escapes written in fullwidth (％４０) are recognised;
// what an escape or run decodes to then goes through steps 1–3, so a
// zero-width space inside a base64 payload or fullwidth digits inside
// percent-escapes are folded too. Decoded text is not decoded again: one
// level, so the work stays linear and the view bounded; %2540 becomes %40,
// not @.
//
// # Not folded, and why
//
//   - Leetspeak (b0mb, 5ecret): which digits stand for letters is a
//     judgement of the content filter, and folding them here would break
//     the digits of real values.
//   - Case: detectors match case-insensitively where they mean to; keys
//     and tokens are case-sensitive.
//   - Look-alikes of other scripts (Armenian, Cherokee, mathematical
//     letters NFKC does not fold) and letters that only resemble Latin
//     ones: a curated table is reviewable, the whole Unicode confusables
//     file would fold real words of many languages.
//   - Quotes and apostrophes, other punctuation: no value a scanner looks
//     for depends on them.
//   - Base64 that does not start on a run boundary, or is broken by line
//     breaks or other characters, and hex with separators (de:ad:be:ef):
//     each piece is judged alone.
//   - Escapes nested in escapes (%2540, &amp;#64;): one level, see above.
//   - Base64 or hex that decodes to binary (images, keys) is never decoded
//     into the view: decoded bytes must be UTF-8 text, at most a tenth of
//     them otherwise, which random data fails within its first 64 bytes.
//
// # Offsets and bounds
//
// [Text.Original] maps a span of the view to the smallest span of the
// original that produced it; see its documentation for the exact
// guarantee. Normalize runs in time linear in the length of its input, and
// bounds what it keeps:
//
//   - The view is at most 2*len(original)+[Slack] bytes. A change that
//     would pass that (an NFKC expansion such as ﷺ, 3 bytes that become
//     33, or a decoded base64 run) is left undone, the rest of the text is
//     still normalised, and [Text.Capped] reports it. A host that must not
//     scan less than everything treats a capped text as a failed scan.
//   - The map holds at most one piece (16 bytes) for every two bytes of
//     the original. Past that, pieces merge into coarser ones that still
//     cover every byte that produced a span, and [Text.Coarse] reports it;
//     only hostile text gets there (alternating invalid bytes and letters).
//   - Texts longer than [MaxInput] are not normalised ([Text.Capped]).
//
// The slowest inputs per byte are text made only of the longest NFKC
// expansions (U+FDFA), at about 10 MB/s of CPU, and of alternating invalid
// bytes or look-alikes, at about 20 MB/s; runs of escapes, references,
// invisible characters and base64 go at hundreds of MB/s. Base64 and hex that decode
// to binary (a data: URL image) are judged on their first 64 decoded bytes
// and never decoded into memory.
//
// # Cost
//
// Pure printable ASCII with no '%', '&' and no run that decodes is the fast
// path: the view is the original and Normalize allocates nothing. Other
// text that ends up unchanged allocates nothing either (buffers are
// pooled); changed text allocates its view and its map, once each.
package textnorm
