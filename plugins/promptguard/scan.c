/*
 * Matching phrases against a text.
 *
 * The text's words are read once, into a ring that holds the next few
 * hundred: a match spans at most PG_MAX_SPAN words, so memory does not grow
 * with the text. At each word the index yields the phrases that may start
 * there; each is matched slot by slot, trying every alternative and skipping
 * optional slots, with results memoised per (slot, word), so that even a
 * phrase made of many optional slots costs at most slots x span steps.
 *
 * Of the phrases that match at a word, the one ending furthest wins, then the
 * higher score, then the one listed first. The scan resumes after it, so
 * findings never overlap and the same text always gives the same findings.
 */
#include <string.h>

#include "promptguard.h"

#define RING 512 /* a power of two, > 2 * PG_MAX_SPAN */
_Static_assert(RING > 2 * PG_MAX_SPAN && (RING & (RING - 1)) == 0, "RING holds a whole match");

/* An instance scans one text at a time, so the scan state is static. */
static struct {
	pg_lexer lx;
	pg_word ring[RING];
	uint32_t produced; /* words read so far */
	bool eof;
} st;

static struct {
	uint32_t stamp[PG_MAX_SLOTS + 1][PG_MAX_SPAN + 1];
	int16_t end[PG_MAX_SLOTS + 1][PG_MAX_SPAN + 1];
	uint32_t now;
} memo;

/* word_at returns word k of the text, or NULL past its end. */
static const pg_word *word_at(uint32_t k) {
	while (st.produced <= k) {
		if (st.eof || !pg_next_word(&st.lx, &st.ring[st.produced & (RING - 1)])) {
			st.eof = true;
			return NULL;
		}
		st.produced++;
	}
	return &st.ring[k & (RING - 1)];
}

static bool alt_matches(const pg_phrases *ps, const pg_alt *alt, uint32_t k) {
	for (uint32_t i = 0; i < alt->nwords; i++) {
		const pg_word *w = word_at(k + i);
		const pg_pword *pw = &ps->words[alt->first_word + i];
		if (!w || w->hash != pw->hash || w->len != pw->len || memcmp(w->text, ps->pool + pw->off, pw->len) != 0) {
			return false;
		}
	}
	return true;
}

/* match returns the number of words from word j that slots s.. of p match
 * when d words are already matched, or -1. */
static int32_t match(const pg_phrases *ps, const pg_phrase *p, uint32_t s, uint32_t j, uint32_t d) {
	if (s == p->nslots) {
		return (int32_t)d;
	}
	if (memo.stamp[s][d] == memo.now) {
		return memo.end[s][d];
	}
	const pg_slot *slot = &ps->slots[p->first_slot + s];
	int32_t best = -1, r;
	if (slot->any) {
		if (word_at(j + d) && (r = match(ps, p, s + 1, j, d + 1)) > best) {
			best = r;
		}
	} else {
		for (uint32_t a = 0; a < slot->nalts; a++) {
			const pg_alt *alt = &ps->alts[slot->first_alt + a];
			if (alt_matches(ps, alt, j + d) && (r = match(ps, p, s + 1, j, d + alt->nwords)) > best) {
				best = r;
			}
		}
	}
	if (slot->optional && (r = match(ps, p, s + 1, j, d)) > best) {
		best = r;
	}
	memo.stamp[s][d] = memo.now;
	memo.end[s][d] = (int16_t)best;
	return best;
}

static void emit(const pg_phrases *ps, const pg_phrase *p, uint32_t message, uint32_t start, uint32_t end,
                 pg_buf *out, uint32_t *count) {
	if (*count > 0) {
		pg_buf_add(out, ",", 1);
	}
	pg_buf_str(out, "{\"type\":\"");
	pg_buf_add(out, ps->pool + p->type_off, p->type_len);
	pg_buf_str(out, "\",\"message\":");
	pg_buf_u32(out, message);
	pg_buf_str(out, ",\"start\":");
	pg_buf_u32(out, start);
	pg_buf_str(out, ",\"end\":");
	pg_buf_u32(out, end);
	pg_buf_str(out, ",\"score\":");
	pg_buf_score(out, p->score);
	pg_buf_add(out, "}", 1);
	(*count)++;
}

void pg_scan(const pg_phrases *ps, uint32_t message, const uint8_t *text, uint32_t n, pg_buf *out,
             uint32_t *count) {
	pg_lexer_init(&st.lx, text, n);
	st.produced = 0;
	st.eof = false;
	for (uint32_t j = 0;;) {
		if (st.produced == j && !st.eof) {
			/* No word after j is read yet: words that cannot start a phrase
			 * need not be read at all. */
			pg_skip_words(&st.lx, ps->pairs);
		}
		const pg_word *w = word_at(j);
		if (!w) {
			return;
		}
		const pg_phrase *best = NULL;
		uint32_t best_words = 0, best_end = 0;
		if (w->len != PG_LONG_WORD) {
			uint32_t b = w->hash & ps->mask;
			for (uint32_t e = ps->bucket_start[b]; e < ps->bucket_start[b + 1]; e++) {
				if (ps->entry_hash[e] != w->hash) {
					continue;
				}
				const pg_phrase *p = &ps->phrases[ps->entry_phrase[e]];
				if (++memo.now == 0) { /* the stamps wrapped: forget them all */
					memset(memo.stamp, 0, sizeof memo.stamp);
					memo.now = 1;
				}
				int32_t r = match(ps, p, 0, j, 0);
				if (r <= 0) {
					continue;
				}
				uint32_t end = word_at(j + (uint32_t)r - 1)->end;
				/* Entries are in phrase order, so on a full tie the first listed stays. */
				if (!best || end > best_end || (end == best_end && p->score > best->score)) {
					best = p, best_words = (uint32_t)r, best_end = end;
				}
			}
		}
		if (!best) {
			j++;
			continue;
		}
		/* w is still word j: the ring holds every word of a match. */
		emit(ps, best, message, w->start, best_end, out, count);
		j += best_words;
	}
}
