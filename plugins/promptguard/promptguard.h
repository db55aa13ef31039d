/*
 * promptguard: a Sluice filter plugin, ABI v1 (sdk/ABI.md), in plain C.
 *
 * It finds prompt-injection, jailbreak and system-prompt exfiltration phrases
 * in the message texts of a request. Texts and phrases are split into words
 * the same way (lexer.c): case, Latin accents, full-width forms and invisible
 * characters are folded away and any run of spaces or punctuation separates
 * words, so "Ignore  ALL previous\ninstructions" matches the phrase
 * "ignore all previous instructions". A phrase is a sequence of slots, each a
 * set of alternatives (phrase.c); matching walks the words of a text once,
 * looking up each word in an index of the phrases' first words (scan.c).
 *
 * Memory: the host writes into buffers from sluice_alloc (abi.c); a scan
 * reads the texts in place and keeps a fixed window of words, so a scan needs
 * no memory in proportion to its input beyond the result document.
 */
#ifndef PROMPTGUARD_H
#define PROMPTGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growable byte buffer (buf.c) ---- */

/* pg_buf is an append-only byte buffer. An allocation failure sets failed
 * and makes later appends no-ops, so callers check once at the end. */
typedef struct {
	char *data;
	uint32_t len, cap;
	bool failed;
} pg_buf;

void pg_buf_reset(pg_buf *b);
void pg_buf_free(pg_buf *b);
void pg_buf_add(pg_buf *b, const void *p, uint32_t n);
void pg_buf_str(pg_buf *b, const char *s);
void pg_buf_u32(pg_buf *b, uint32_t v);
/* pg_buf_score appends a score given in thousandths as a JSON number: 0.95, 1, 0. */
void pg_buf_score(pg_buf *b, uint32_t milli);
/* pg_buf_quoted appends at most max bytes of s, in double quotes, with
 * anything but printable ASCII replaced by '?': for error messages that name
 * a configuration value. */
void pg_buf_quoted(pg_buf *b, const char *s, uint32_t n, uint32_t max);

/* pg_grow makes room for need elements of size bytes in *p, whose capacity is
 * *cap, doubling it. It returns false when memory runs out. */
bool pg_grow(void **p, uint32_t *cap, uint32_t need, size_t size);

/* ---- words (lexer.c) ---- */

/* PG_MAX_WORD bounds the folded length of a phrase word. Longer text words
 * are hashed but not kept: they cannot equal a phrase word. */
#define PG_MAX_WORD 64
#define PG_LONG_WORD 0xff /* pg_word.len of a text word longer than PG_MAX_WORD */

/* pg_word is one word of a text: its byte range in the text (end exclusive,
 * both on UTF-8 sequence boundaries), its folded form and that form's hash. */
typedef struct {
	uint32_t start, end;
	uint32_t hash;
	uint8_t len;
	char text[PG_MAX_WORD];
} pg_word;

/* pg_lexer splits a text into words. It only reads the text. */
typedef struct {
	const uint8_t *s;
	uint32_t n, i;
} pg_lexer;

void pg_lexer_init(pg_lexer *lx, const uint8_t *s, uint32_t n);
/* pg_next_word stores the next word of the text in w and returns true, or
 * returns false at the end of the text. */
bool pg_next_word(pg_lexer *lx, pg_word *w);

/* pg_skip_words moves lx past ASCII words that cannot start a phrase, whose
 * first two bytes have no bit in pairs (see pg_phrases), and stops at the
 * start of any other word or at a non-ASCII character. */
void pg_skip_words(pg_lexer *lx, const uint8_t *pairs);

/* ---- phrases and configuration (phrase.c, config.c) ---- */

/* A compiled phrase: slots[first_slot..+nslots), each slot alternatives
 * alts[first_alt..+nalts), each alternative words[first_word..+nwords). */
typedef struct {
	uint32_t hash;
	uint32_t off; /* into pg_phrases.pool */
	uint8_t len;
} pg_pword;

typedef struct {
	uint32_t first_word, nwords;
} pg_alt;

typedef struct {
	uint32_t first_alt, nalts;
	bool optional; /* [a|b]: may be left out */
	bool any;      /* *: any one word */
} pg_slot;

typedef struct {
	uint32_t first_slot, nslots;
	uint32_t type_off, type_len; /* into pool */
	uint32_t score;              /* thousandths, 0..1000 */
	uint32_t max_words;          /* the most words a match can span */
} pg_phrase;

/* Limits on one phrase, so that matching stays cheap and bounded. */
#define PG_MAX_PHRASE_BYTES 1024
#define PG_MAX_SLOTS 32
#define PG_MAX_SPAN 128 /* words a match may span */
#define PG_MAX_PHRASES 4096

/* pg_phrases is the compiled, indexed phrase set of a configuration. */
typedef struct {
	pg_pword *words;
	uint32_t nwords, cap_words;
	pg_alt *alts;
	uint32_t nalts, cap_alts;
	pg_slot *slots;
	uint32_t nslots, cap_slots;
	pg_phrase *phrases;
	uint32_t nphrases, cap_phrases;
	char *pool;
	uint32_t npool, cap_pool;

	/* index: for each bucket (first-word hash & mask), the phrases whose
	 * first slot has an alternative starting with a word of that hash:
	 * entries[bucket_start[b]..bucket_start[b+1]). */
	uint32_t *bucket_start;
	uint32_t *entry_phrase, *entry_hash;
	uint32_t mask;
	/* pairs has bit a<<7|b set when an indexed first word, folded, starts with
	 * the ASCII bytes a and b (b is 0 for a one-letter word): a quick test
	 * that lets the scan skip most words without folding or hashing them. */
	uint8_t pairs[128 * 128 / 8];

	uint32_t builtin, configured; /* phrases compiled from each source */
	uint32_t active;              /* phrases at or above min_score, in the index */
	uint32_t min_score;           /* thousandths */
} pg_phrases;

void pg_phrases_free(pg_phrases *ps);
/* pg_phrase_add compiles one phrase. On error it returns false and appends
 * "<label>[<index>]: <reason>" to err. */
bool pg_phrase_add(pg_phrases *ps, const char *label, uint32_t index, const char *text, uint32_t n,
                   const char *type, uint32_t type_len, uint32_t score, pg_buf *err);
/* pg_phrases_index builds the first-word index over the phrases scoring at
 * least ps->min_score. */
bool pg_phrases_index(pg_phrases *ps);

/* pg_configure parses the JSON configuration and compiles the phrase set. On
 * error it returns false and err holds a message for the operator. */
bool pg_configure(pg_phrases *ps, const uint8_t *json, uint32_t n, pg_buf *err);

/* pg_valid_type reports whether s is a finding type: [A-Z0-9_]{1,64}. */
bool pg_valid_type(const char *s, uint32_t n);

/* The phrases that apply unless the configuration turns them off (defaults.c). */
typedef struct {
	const char *type;
	uint32_t score; /* thousandths */
	const char *phrase;
} pg_default_phrase;

extern const pg_default_phrase pg_defaults[];
extern const uint32_t pg_ndefaults;

/* ---- scanning (scan.c) ---- */

/* pg_scan appends the findings of one text, message index message, to out as
 * comma-separated JSON objects; *count is incremented per finding. */
void pg_scan(const pg_phrases *ps, uint32_t message, const uint8_t *text, uint32_t n, pg_buf *out,
             uint32_t *count);

#endif
