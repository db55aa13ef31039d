/*
 * The configuration: JSON, read by a small parser that checks every index
 * against the end of the input.
 *
 *   {"min_score": 0.8, "default_phrases": true,
 *    "phrases": ["exact phrase", {"phrase": "a|b [c] d", "type": "JAILBREAK", "score": 0.7}]}
 *
 * The document is first checked to be JSON (RFC 8259, nesting up to 64
 * levels), so that a syntax error is reported as such, and then read for the
 * fields above. Unknown fields are refused: a misspelt "min_socre" would
 * otherwise be ignored without a word.
 */
#include <stdlib.h>
#include <string.h>

#include "promptguard.h"

/* Defaults of a configured phrase given without them. */
#define DEFAULT_TYPE "PROMPT_INJECTION"
#define DEFAULT_SCORE 900

typedef struct {
	const uint8_t *s;
	uint32_t n, i;
	pg_buf *err;
} parser;

static bool syntax(parser *p, const char *expected) {
	pg_buf_str(p->err, "promptguard config: invalid JSON at byte ");
	pg_buf_u32(p->err, p->i);
	pg_buf_str(p->err, ": expected ");
	pg_buf_str(p->err, expected);
	return false;
}

static bool invalid(parser *p, const char *what) {
	pg_buf_str(p->err, "promptguard config: ");
	pg_buf_str(p->err, what);
	return false;
}

static void ws(parser *p) {
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) {
		p->i++;
	}
}

/* peek skips white space and returns the next byte, or 0 at the end. */
static uint8_t peek(parser *p) {
	ws(p);
	return p->i < p->n ? p->s[p->i] : 0;
}

static bool eat(parser *p, char c) {
	if (peek(p) != (uint8_t)c) {
		return false;
	}
	p->i++;
	return true;
}

static bool literal(parser *p, const char *word) {
	uint32_t n = (uint32_t)strlen(word);
	ws(p);
	if (p->n - p->i < n || memcmp(p->s + p->i, word, n) != 0) {
		return false;
	}
	p->i += n;
	return true;
}

static int hex(uint8_t c) {
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* u4 reads the four hex digits of a \u escape at p->i. */
static bool u4(parser *p, uint32_t *v) {
	if (p->n - p->i < 4) {
		return false;
	}
	*v = 0;
	for (int k = 0; k < 4; k++) {
		int d = hex(p->s[p->i + k]);
		if (d < 0) {
			return false;
		}
		*v = *v << 4 | (uint32_t)d;
	}
	p->i += 4;
	return true;
}

static void put_utf8(pg_buf *out, uint32_t c) {
	uint8_t b[4];
	uint32_t n;
	if (c < 0x80) {
		b[0] = (uint8_t)c, n = 1;
	} else if (c < 0x800) {
		b[0] = (uint8_t)(0xc0 | c >> 6), b[1] = (uint8_t)(0x80 | (c & 0x3f)), n = 2;
	} else if (c < 0x10000) {
		b[0] = (uint8_t)(0xe0 | c >> 12), b[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
		b[2] = (uint8_t)(0x80 | (c & 0x3f)), n = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | c >> 18), b[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
		b[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f)), b[3] = (uint8_t)(0x80 | (c & 0x3f)), n = 4;
	}
	pg_buf_add(out, b, n);
}

/* string reads a JSON string and, if out is not NULL, its decoded bytes into
 * out. A lone surrogate escape decodes to U+FFFD, as in Go. */
static bool string(parser *p, pg_buf *out) {
	if (!eat(p, '"')) {
		return syntax(p, "a string");
	}
	if (out) {
		pg_buf_reset(out);
	}
	while (p->i < p->n) {
		uint8_t c = p->s[p->i];
		if (c == '"') {
			p->i++;
			if (out && out->failed) {
				return invalid(p, "out of memory");
			}
			return true;
		}
		if (c < 0x20) {
			return syntax(p, "no control characters in a string");
		}
		if (c != '\\') {
			uint32_t start = p->i;
			while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' && p->s[p->i] >= 0x20) {
				p->i++;
			}
			if (out) {
				pg_buf_add(out, p->s + start, p->i - start);
			}
			continue;
		}
		p->i++;
		if (p->i >= p->n) {
			break;
		}
		c = p->s[p->i++];
		static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
		const char *simple = c ? strchr(escapes, c) : NULL;
		if (simple) {
			if (out) {
				pg_buf_add(out, &decoded[simple - escapes], 1);
			}
			continue;
		}
		if (c != 'u') {
			p->i--;
			return syntax(p, "a valid escape");
		}
		uint32_t u;
		if (!u4(p, &u)) {
			return syntax(p, "four hex digits");
		}
		if (u >= 0xd800 && u < 0xdc00 && p->n - p->i >= 6 && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
			uint32_t save = p->i, lo;
			p->i += 2;
			if (u4(p, &lo) && lo >= 0xdc00 && lo < 0xe000) {
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			} else {
				p->i = save; /* not a pair: the next escape is read on its own */
			}
		}
		if (u >= 0xd800 && u < 0xe000) {
			u = 0xfffd;
		}
		if (out) {
			put_utf8(out, u);
		}
	}
	return syntax(p, "the end of the string");
}

static bool digits(parser *p) {
	uint32_t start = p->i;
	while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
		p->i++;
	}
	return p->i > start;
}

/* number reads a JSON number; v may be NULL. */
static bool number(parser *p, double *v) {
	ws(p);
	uint32_t start = p->i;
	if (p->i < p->n && p->s[p->i] == '-') {
		p->i++;
	}
	if (p->i < p->n && p->s[p->i] == '0') {
		p->i++;
	} else if (!digits(p)) {
		return syntax(p, "a value");
	}
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (!digits(p)) {
			return syntax(p, "digits after the decimal point");
		}
	}
	if (p->i < p->n && (p->s[p->i] | 0x20) == 'e') {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) {
			p->i++;
		}
		if (!digits(p)) {
			return syntax(p, "digits in the exponent");
		}
	}
	if (v) {
		char tmp[64];
		uint32_t n = p->i - start;
		if (n >= sizeof tmp) {
			return invalid(p, "a number is longer than 63 characters");
		}
		memcpy(tmp, p->s + start, n);
		tmp[n] = 0;
		*v = strtod(tmp, NULL);
	}
	return true;
}

/* value checks one JSON value of any kind. */
static bool value(parser *p, int depth) {
	if (depth > 64) {
		return invalid(p, "JSON nested deeper than 64 levels");
	}
	switch (peek(p)) {
	case '{':
		p->i++;
		if (eat(p, '}')) {
			return true;
		}
		do {
			if (!string(p, NULL)) {
				return false;
			}
			if (!eat(p, ':')) {
				return syntax(p, "':'");
			}
			if (!value(p, depth + 1)) {
				return false;
			}
		} while (eat(p, ','));
		return eat(p, '}') || syntax(p, "',' or '}'");
	case '[':
		p->i++;
		if (eat(p, ']')) {
			return true;
		}
		do {
			if (!value(p, depth + 1)) {
				return false;
			}
		} while (eat(p, ','));
		return eat(p, ']') || syntax(p, "',' or ']'");
	case '"':
		return string(p, NULL);
	case 't':
		return literal(p, "true") || syntax(p, "a value");
	case 'f':
		return literal(p, "false") || syntax(p, "a value");
	case 'n':
		return literal(p, "null") || syntax(p, "a value");
	}
	return number(p, NULL);
}

/* key reads an object key and its colon into key. */
static bool key(parser *p, pg_buf *key) { return string(p, key) && eat(p, ':'); }

static bool is(const pg_buf *b, const char *s) { return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0; }

/* score reads a number in [0, 1] as thousandths. */
static bool score(parser *p, const char *field, uint32_t *milli) {
	double v = -1;
	uint8_t c = peek(p);
	if ((c == '-' || (c >= '0' && c <= '9')) && !number(p, &v)) {
		return false;
	}
	if (!(v >= 0 && v <= 1)) {
		pg_buf_str(p->err, "promptguard config: ");
		pg_buf_str(p->err, field);
		pg_buf_str(p->err, " must be a number from 0 to 1");
		return false;
	}
	*milli = (uint32_t)(v * 1000 + 0.5);
	return true;
}

typedef struct {
	pg_buf key, text, type;
} scratch;

/* phrase reads one element of "phrases": a string, or an object. */
static bool phrase(parser *p, pg_phrases *ps, uint32_t index, scratch *sc) {
	uint32_t milli = DEFAULT_SCORE;
	if (peek(p) == '"') {
		if (!string(p, &sc->text)) {
			return false;
		}
		return pg_phrase_add(ps, "promptguard config: phrases", index, sc->text.data, sc->text.len, DEFAULT_TYPE,
		                     sizeof DEFAULT_TYPE - 1, milli, p->err);
	}
	if (!eat(p, '{')) {
		pg_buf_str(p->err, "promptguard config: phrases[");
		pg_buf_u32(p->err, index);
		pg_buf_str(p->err, "] must be a string or an object");
		return false;
	}
	bool have_text = false, have_type = false;
	if (!eat(p, '}')) {
		do {
			if (!key(p, &sc->key)) {
				return false;
			}
			if (is(&sc->key, "phrase")) {
				if (peek(p) != '"') {
					return invalid(p, "a phrase's \"phrase\" must be a string");
				}
				if (!string(p, &sc->text)) {
					return false;
				}
				have_text = true;
			} else if (is(&sc->key, "type")) {
				if (peek(p) != '"') {
					return invalid(p, "a phrase's \"type\" must be a string");
				}
				if (!string(p, &sc->type)) {
					return false;
				}
				have_type = true;
			} else if (is(&sc->key, "score")) {
				if (!score(p, "a phrase's \"score\"", &milli)) {
					return false;
				}
			} else {
				pg_buf_str(p->err, "promptguard config: unknown field ");
				pg_buf_quoted(p->err, sc->key.data, sc->key.len, 40);
				pg_buf_str(p->err, " in phrases[");
				pg_buf_u32(p->err, index);
				pg_buf_str(p->err, "] (want phrase, type, score)");
				return false;
			}
		} while (eat(p, ','));
		eat(p, '}');
	}
	if (!have_text) {
		pg_buf_str(p->err, "promptguard config: phrases[");
		pg_buf_u32(p->err, index);
		pg_buf_str(p->err, "] has no \"phrase\"");
		return false;
	}
	const char *type = have_type ? sc->type.data : DEFAULT_TYPE;
	uint32_t type_len = have_type ? sc->type.len : sizeof DEFAULT_TYPE - 1;
	return pg_phrase_add(ps, "promptguard config: phrases", index, sc->text.data, sc->text.len, type, type_len,
	                     milli, p->err);
}

/* fields reads the top-level object of a document already known to be JSON. */
static bool fields(parser *p, pg_phrases *ps, bool *defaults, scratch *sc) {
	if (literal(p, "null")) {
		return true; /* as in Go's encoding/json: no fields set */
	}
	if (!eat(p, '{')) {
		return invalid(p, "the configuration must be a JSON object");
	}
	if (eat(p, '}')) {
		return true;
	}
	do {
		if (!key(p, &sc->key)) {
			return false;
		}
		if (literal(p, "null")) {
			continue; /* a field set to null keeps its default */
		}
		if (is(&sc->key, "min_score")) {
			if (!score(p, "min_score", &ps->min_score)) {
				return false;
			}
		} else if (is(&sc->key, "default_phrases")) {
			if (literal(p, "true")) {
				*defaults = true;
			} else if (literal(p, "false")) {
				*defaults = false;
			} else {
				return invalid(p, "default_phrases must be true or false");
			}
		} else if (is(&sc->key, "phrases")) {
			if (!eat(p, '[')) {
				return invalid(p, "phrases must be an array");
			}
			if (eat(p, ']')) {
				continue;
			}
			uint32_t index = 0;
			do {
				if (!phrase(p, ps, index++, sc)) {
					return false;
				}
			} while (eat(p, ','));
			eat(p, ']');
		} else {
			pg_buf_str(p->err, "promptguard config: unknown field ");
			pg_buf_quoted(p->err, sc->key.data, sc->key.len, 40);
			pg_buf_str(p->err, " (want min_score, default_phrases, phrases)");
			return false;
		}
	} while (eat(p, ','));
	return true;
}

static bool configure(pg_phrases *ps, const uint8_t *json, uint32_t n, pg_buf *err, scratch *sc) {
	if (n > 0) {
		parser check = {json, n, 0, err};
		if (!value(&check, 0)) {
			return false;
		}
		if (peek(&check) != 0) {
			return syntax(&check, "the end of the document");
		}
	}
	bool defaults = true;
	parser p = {json, n, 0, err};
	if (n > 0 && !fields(&p, ps, &defaults, sc)) {
		return false;
	}
	ps->configured = ps->nphrases;
	if (defaults) {
		for (uint32_t i = 0; i < pg_ndefaults; i++) {
			const pg_default_phrase *d = &pg_defaults[i];
			if (!pg_phrase_add(ps, "promptguard: built-in phrase", i, d->phrase, (uint32_t)strlen(d->phrase),
			                   d->type, (uint32_t)strlen(d->type), d->score, err)) {
				return false;
			}
		}
	}
	ps->builtin = ps->nphrases - ps->configured;
	if (ps->nphrases == 0) {
		return invalid(&p, "no phrases: default_phrases is false and phrases is empty");
	}
	if (!pg_phrases_index(ps)) {
		return invalid(&p, "out of memory");
	}
	return true;
}

bool pg_configure(pg_phrases *ps, const uint8_t *json, uint32_t n, pg_buf *err) {
	scratch sc = {0};
	bool ok = configure(ps, json, n, err, &sc);
	pg_buf_free(&sc.key);
	pg_buf_free(&sc.text);
	pg_buf_free(&sc.type);
	return ok;
}
