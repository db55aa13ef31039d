/*
 * Compiling phrases and indexing them by their first words.
 *
 * A phrase is a list of slots separated by spaces. A slot is one or more
 * alternatives separated by '|'; "[a|b]" makes the slot optional and "*"
 * stands for any one word. An alternative is split into words by the lexer,
 * so "do_not" or "system-prompt" is an alternative of two words and "忽略" one
 * of two characters:
 *
 *   ignore|disregard [all|any] previous|prior instructions|rules
 */
#include <stdlib.h>
#include <string.h>

#include "promptguard.h"

void pg_phrases_free(pg_phrases *ps) {
	free(ps->words);
	free(ps->alts);
	free(ps->slots);
	free(ps->phrases);
	free(ps->pool);
	free(ps->bucket_start);
	free(ps->entry_phrase);
	free(ps->entry_hash);
	*ps = (pg_phrases){0};
}

bool pg_valid_type(const char *s, uint32_t n) {
	if (n == 0 || n > 64) {
		return false;
	}
	for (uint32_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
			return false;
		}
	}
	return true;
}

static bool pool_add(pg_phrases *ps, const char *p, uint32_t n, uint32_t *off) {
	void *pool = ps->pool;
	if (n > UINT32_MAX - ps->npool || !pg_grow(&pool, &ps->cap_pool, ps->npool + n, 1)) {
		return false;
	}
	ps->pool = pool;
	memcpy(ps->pool + ps->npool, p, n);
	*off = ps->npool;
	ps->npool += n;
	return true;
}

/* GROW makes room for one more element in ps->field, of which there are ps->count. */
#define GROW(ps, field, count, cap) GROW_TO((ps)->field, (ps)->cap, (ps)->count + 1)
#define GROW_TO(arr, cap, need)                                              \
	({                                                                   \
		void *p_ = (arr);                                            \
		bool ok_ = pg_grow(&p_, &(cap), (need), sizeof *(arr));      \
		if (ok_) {                                                   \
			(arr) = p_;                                          \
		}                                                            \
		ok_;                                                         \
	})

/* add_alt compiles the words of one alternative. It reports the number of
 * words in *nwords, or fails with a reason. */
static const char *add_alt(pg_phrases *ps, const char *text, uint32_t n, uint32_t *nwords) {
	if (!GROW(ps, alts, nalts, cap_alts)) {
		return "out of memory";
	}
	pg_alt *alt = &ps->alts[ps->nalts];
	alt->first_word = ps->nwords;
	alt->nwords = 0;
	pg_lexer lx;
	pg_word w;
	pg_lexer_init(&lx, (const uint8_t *)text, n);
	while (pg_next_word(&lx, &w)) {
		if (w.len == PG_LONG_WORD) {
			return "has a word longer than 64 bytes";
		}
		if (!GROW(ps, words, nwords, cap_words)) {
			return "out of memory";
		}
		pg_pword *pw = &ps->words[ps->nwords];
		if (!pool_add(ps, w.text, w.len, &pw->off)) {
			return "out of memory";
		}
		pw->hash = w.hash;
		pw->len = w.len;
		ps->nwords++;
		alt->nwords++;
	}
	*nwords = alt->nwords;
	if (alt->nwords > 0) {
		ps->nalts++;
	}
	return NULL;
}

/* add_slot compiles one space-separated slot of a phrase. A slot of nothing
 * but punctuation is left out (*added false), so that a plain phrase such as
 * "you are now -- DAN" compiles as written. */
static const char *add_slot(pg_phrases *ps, const char *text, uint32_t n, uint32_t *span, bool *added) {
	bool open = text[0] == '[', close = text[n - 1] == ']';
	if (open != close || (open && n < 3)) {
		return "has unbalanced or empty [ ]";
	}
	pg_slot slot = {.first_alt = ps->nalts, .optional = open};
	if (open) {
		text++;
		n -= 2;
	}
	*added = false;
	*span = 0;
	if (n == 1 && text[0] == '*') {
		slot.any = true;
		*span = 1;
	} else {
		bool choice = false, empty = false;
		uint32_t start = 0;
		for (uint32_t i = 0; i <= n; i++) {
			if (i < n && text[i] != '|') {
				continue;
			}
			if (i < n) {
				choice = true;
			}
			uint32_t nw;
			const char *why = add_alt(ps, text + start, i - start, &nw);
			if (why) {
				return why;
			}
			empty |= nw == 0;
			if (nw > *span) {
				*span = nw;
			}
			start = i + 1;
		}
		slot.nalts = ps->nalts - slot.first_alt;
		if (slot.nalts == 0 && !choice && !open) {
			return NULL; /* punctuation only */
		}
		if (empty) {
			return "has an alternative with no letters or digits";
		}
	}
	if (!GROW(ps, slots, nslots, cap_slots)) {
		return "out of memory";
	}
	ps->slots[ps->nslots++] = slot;
	*added = true;
	return NULL;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static const char *compile(pg_phrases *ps, const char *text, uint32_t n, pg_phrase *p) {
	if (n > PG_MAX_PHRASE_BYTES) {
		return "is longer than 1024 bytes";
	}
	p->first_slot = ps->nslots;
	p->max_words = 0;
	for (uint32_t i = 0; i < n;) {
		if (is_space(text[i])) {
			i++;
			continue;
		}
		uint32_t start = i;
		while (i < n && !is_space(text[i])) {
			i++;
		}
		uint32_t span;
		bool added;
		const char *why = add_slot(ps, text + start, i - start, &span, &added);
		if (why) {
			return why;
		}
		if (!added) {
			continue;
		}
		const pg_slot *s = &ps->slots[ps->nslots - 1];
		if (ps->nslots - p->first_slot == 1 && (s->optional || s->any)) {
			return "must start with a word, not with [ ] or *";
		}
		if (ps->nslots - p->first_slot > PG_MAX_SLOTS) {
			return "has more than 32 slots";
		}
		p->max_words += span;
		if (p->max_words > PG_MAX_SPAN) {
			return "can match more than 128 words";
		}
	}
	p->nslots = ps->nslots - p->first_slot;
	if (p->nslots == 0) {
		return "has no letters or digits";
	}
	return NULL;
}

bool pg_phrase_add(pg_phrases *ps, const char *label, uint32_t index, const char *text, uint32_t n,
                   const char *type, uint32_t type_len, uint32_t score, pg_buf *err) {
	/* On failure the partly compiled phrase is dropped by rolling the arrays back. */
	uint32_t nwords = ps->nwords, nalts = ps->nalts, nslots = ps->nslots, npool = ps->npool;
	pg_phrase p = {.score = score, .type_len = type_len};
	const char *why = NULL;
	if (ps->nphrases >= PG_MAX_PHRASES) {
		why = "is one phrase too many (the limit is 4096)";
	} else if (!pg_valid_type(type, type_len)) {
		why = "has a type that is not 1 to 64 of A-Z, 0-9 and _";
	} else if (score > 1000) {
		why = "has a score outside [0, 1]";
	} else if (!pool_add(ps, type, type_len, &p.type_off)) {
		why = "out of memory";
	} else {
		why = compile(ps, text, n, &p);
	}
	if (!why && !GROW(ps, phrases, nphrases, cap_phrases)) {
		why = "out of memory";
	}
	if (why) {
		ps->nwords = nwords, ps->nalts = nalts, ps->nslots = nslots, ps->npool = npool;
		pg_buf_str(err, label);
		pg_buf_str(err, "[");
		pg_buf_u32(err, index);
		pg_buf_str(err, "]: ");
		pg_buf_str(err, why);
		return false;
	}
	ps->phrases[ps->nphrases++] = p;
	return true;
}

bool pg_phrases_index(pg_phrases *ps) {
	free(ps->bucket_start);
	free(ps->entry_phrase);
	free(ps->entry_hash);
	ps->bucket_start = ps->entry_phrase = ps->entry_hash = NULL;
	ps->active = 0;
	memset(ps->pairs, 0, sizeof ps->pairs);

	/* Collect (phrase, first-word hash) pairs, once per distinct hash. */
	uint32_t *phrase = NULL, *hash = NULL, n = 0, cap_p = 0, cap_h = 0;
	bool ok = true;
	for (uint32_t i = 0; i < ps->nphrases && ok; i++) {
		const pg_phrase *p = &ps->phrases[i];
		if (p->score < ps->min_score) {
			continue;
		}
		ps->active++;
		const pg_slot *s = &ps->slots[p->first_slot];
		uint32_t first = n;
		for (uint32_t a = 0; a < s->nalts && ok; a++) {
			const pg_pword *w = &ps->words[ps->alts[s->first_alt + a].first_word];
			const uint8_t *t = (const uint8_t *)ps->pool + w->off;
			if (t[0] < 0x80 && (w->len == 1 || t[1] < 0x80)) {
				uint32_t pair = (uint32_t)t[0] << 7 | (w->len == 1 ? 0 : t[1]);
				ps->pairs[pair >> 3] |= (uint8_t)(1u << (pair & 7));
			}
			uint32_t h = w->hash;
			bool seen = false;
			for (uint32_t k = first; k < n && !seen; k++) {
				seen = hash[k] == h;
			}
			if (seen) {
				continue;
			}
			ok = GROW_TO(phrase, cap_p, n + 1) && GROW_TO(hash, cap_h, n + 1);
			if (ok) {
				phrase[n] = i;
				hash[n] = h;
				n++;
			}
		}
	}
	uint32_t nb = 16;
	while (ok && nb < 2 * n) {
		nb *= 2;
	}
	if (ok) {
		ps->bucket_start = calloc(nb + 1, sizeof *ps->bucket_start);
		ps->entry_phrase = malloc((n ? n : 1) * sizeof *ps->entry_phrase);
		ps->entry_hash = malloc((n ? n : 1) * sizeof *ps->entry_hash);
		ok = ps->bucket_start && ps->entry_phrase && ps->entry_hash;
	}
	if (ok) {
		/* A counting sort by bucket keeps each bucket in phrase order. */
		ps->mask = nb - 1;
		for (uint32_t k = 0; k < n; k++) {
			ps->bucket_start[(hash[k] & ps->mask) + 1]++;
		}
		for (uint32_t b = 0; b < nb; b++) {
			ps->bucket_start[b + 1] += ps->bucket_start[b];
		}
		uint32_t *fill = calloc(nb, sizeof *fill);
		ok = fill != NULL;
		for (uint32_t k = 0; ok && k < n; k++) {
			uint32_t b = hash[k] & ps->mask;
			uint32_t at = ps->bucket_start[b] + fill[b]++;
			ps->entry_phrase[at] = phrase[k];
			ps->entry_hash[at] = hash[k];
		}
		free(fill);
	}
	free(phrase);
	free(hash);
	return ok;
}
