/*
 * Splitting text into folded words.
 *
 * A word is a run of letters and digits. Folding lower-cases ASCII, Latin-1,
 * Latin Extended-A, Greek and Cyrillic letters, strips Latin accents ("é" to
 * "e", "ß" to "ss"), and reads full-width forms and Unicode tag characters
 * (invisible copies of ASCII, used to smuggle instructions past a reader) as
 * the ASCII they stand for. Zero-width characters, soft hyphens, variation
 * selectors and combining marks are skipped inside a word, so they cannot
 * break a phrase apart. Everything else that is not a letter separates words.
 * Chinese and Japanese are written without spaces, so each of their
 * characters is a word of its own.
 *
 * UTF-8 is decoded exactly as Go's unicode/utf8 does: an invalid byte is one
 * character of its own (a separator). Word boundaries therefore always fall on
 * the sequence boundaries the host and the conformance suite expect.
 */
#include "promptguard.h"

enum { SEP, WORD, SINGLE, IGNORE };

#define BAD 0xFFFFFFFFu
#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

/* decode returns the code point at s[i] and its size, or BAD and size 1. */
static uint32_t decode(const uint8_t *s, uint32_t n, uint32_t i, uint32_t *size) {
	uint8_t b0 = s[i];
	*size = 1;
	if (b0 < 0x80) {
		return b0;
	}
	uint32_t need, cp;
	uint8_t lo = 0x80, hi = 0xbf;
	if (b0 < 0xc2) {
		return BAD;
	} else if (b0 < 0xe0) {
		need = 1, cp = b0 & 0x1f;
	} else if (b0 < 0xf0) {
		need = 2, cp = b0 & 0x0f;
		if (b0 == 0xe0) {
			lo = 0xa0; /* overlong */
		} else if (b0 == 0xed) {
			hi = 0x9f; /* surrogates */
		}
	} else if (b0 < 0xf5) {
		need = 3, cp = b0 & 0x07;
		if (b0 == 0xf0) {
			lo = 0x90; /* overlong */
		} else if (b0 == 0xf4) {
			hi = 0x8f; /* above U+10FFFF */
		}
	} else {
		return BAD;
	}
	if (n - i <= need) {
		return BAD;
	}
	for (uint32_t k = 1; k <= need; k++) {
		uint8_t b = s[i + k];
		if (b < lo || b > hi) {
			return BAD;
		}
		lo = 0x80, hi = 0xbf;
		cp = cp << 6 | (b & 0x3f);
	}
	*size = need + 1;
	return cp;
}

/* unmask maps full-width ASCII and tag characters to the ASCII they show or hide. */
static uint32_t unmask(uint32_t c) {
	if (c >= 0xff01 && c <= 0xff5e) {
		return c - 0xfee0;
	}
	if (c >= 0xe0020 && c <= 0xe007e) {
		return c - 0xe0000;
	}
	return c;
}

static int classify(uint32_t c) {
	if (c < 0x80) {
		return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? WORD : SEP;
	}
	if (c < 0xc0) {
		return c == 0xad ? IGNORE : SEP; /* soft hyphen; Latin-1 punctuation */
	}
	if (c < 0x300) {
		return c == 0xd7 || c == 0xf7 ? SEP : WORD;
	}
	if (c < 0x370 || (c >= 0x1ab0 && c < 0x1b00) || (c >= 0x1dc0 && c < 0x1e00)) {
		return IGNORE; /* combining marks */
	}
	if (c < 0x2000) {
		return WORD; /* Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic, ... */
	}
	if (c < 0x2070) {
		return (c >= 0x200b && c <= 0x200d) || (c >= 0x2060 && c <= 0x2064) ? IGNORE : SEP;
	}
	if (c < 0x2e80) {
		return SEP; /* symbols, arrows, box drawing */
	}
	if (c < 0x3000) {
		return SINGLE; /* CJK radicals */
	}
	if (c < 0x3040) {
		return SEP; /* CJK punctuation */
	}
	if (c < 0xa000) {
		return SINGLE; /* kana, CJK ideographs */
	}
	if (c < 0xd7b0) {
		return WORD; /* Yi, Hangul (Korean is written with spaces) */
	}
	if (c < 0xf900) {
		return SEP; /* private use */
	}
	if (c < 0xfb00) {
		return SINGLE; /* CJK compatibility ideographs */
	}
	if ((c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff) {
		return IGNORE; /* variation selectors, zero-width no-break space */
	}
	if ((c >= 0xfe10 && c <= 0xfe6f) || (c >= 0xff00 && c <= 0xff64) || (c >= 0xfff0 && c < 0x10000)) {
		return SEP;
	}
	if (c >= 0xff65 && c <= 0xff9f) {
		return SINGLE; /* half-width katakana */
	}
	if (c < 0x10000) {
		return WORD;
	}
	if (c >= 0x20000 && c < 0x40000) {
		return SINGLE; /* CJK extensions */
	}
	if (c >= 0xe0000 && c < 0xe1000) {
		return IGNORE; /* tags and variation selectors not mapped by unmask */
	}
	return SEP; /* emoji, symbols, historic scripts */
}

/* U+00C0..U+00DE, lower-cased; '?' marks the letters folded to two. */
static const char latin1[] = "aaaaaa?ceeeeiiiidnooooo?ouuuuy?";
/* U+0100..U+017F. */
static const char latin_a[] = "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii??jjkkk"
                              "llllllllllnnnnnnnnnoooooo??rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";
_Static_assert(sizeof latin1 == 0xdf - 0xc0 + 1, "latin1 covers U+00C0..U+00DE");
_Static_assert(sizeof latin_a == 0x80 + 1, "latin_a covers U+0100..U+017F");

static uint32_t utf8(uint32_t c, uint8_t *out) {
	if (c < 0x80) {
		out[0] = (uint8_t)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (uint8_t)(0xc0 | c >> 6);
		out[1] = (uint8_t)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (uint8_t)(0xe0 | c >> 12);
		out[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
		out[2] = (uint8_t)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (uint8_t)(0xf0 | c >> 18);
	out[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
	out[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
	out[3] = (uint8_t)(0x80 | (c & 0x3f));
	return 4;
}

static uint32_t two(uint8_t *out, char a, char b) {
	out[0] = (uint8_t)a;
	out[1] = (uint8_t)b;
	return 2;
}

/* fold writes the folded form of the letter c to out (at most 4 bytes). */
static uint32_t fold(uint32_t c, uint8_t *out) {
	if (c < 0x80) {
		out[0] = (uint8_t)(c >= 'A' && c <= 'Z' ? c + 0x20 : c);
		return 1;
	}
	if (c >= 0xc0 && c <= 0xff) {
		uint32_t u = c == 0xff ? 0xdd : c >= 0xe0 && c != 0xf7 ? c - 0x20 : c;
		switch (u) {
		case 0xc6:
			return two(out, 'a', 'e');
		case 0xde:
			return two(out, 't', 'h');
		case 0xdf:
			return two(out, 's', 's');
		}
		out[0] = (uint8_t)latin1[u - 0xc0];
		return 1;
	}
	if (c >= 0x100 && c <= 0x17f) {
		switch (c) {
		case 0x132:
		case 0x133:
			return two(out, 'i', 'j');
		case 0x152:
		case 0x153:
			return two(out, 'o', 'e');
		}
		out[0] = (uint8_t)latin_a[c - 0x100];
		return 1;
	}
	if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) {
		c += 0x20; /* Greek capitals */
	} else if (c == 0x401 || c == 0x451) {
		c = 0x435; /* Ё, ё: Russian text often writes е for ё */
	} else if (c >= 0x400 && c <= 0x40f) {
		c += 0x50;
	} else if (c >= 0x410 && c <= 0x42f) {
		c += 0x20;
	}
	return utf8(c, out);
}

void pg_lexer_init(pg_lexer *lx, const uint8_t *s, uint32_t n) {
	lx->s = s;
	lx->n = n;
	lx->i = 0;
}

/* ascii maps ASCII letters and digits to their folded form and every other
 * byte to 0: most text is ASCII, and this keeps it off the general path. */
static const uint8_t ascii[256] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5', ['6'] = '6', ['7'] = '7',
    ['8'] = '8', ['9'] = '9', ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f',
    ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n',
    ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't', ['U'] = 'u', ['V'] = 'v',
    ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y', ['Z'] = 'z', ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd',
    ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k', ['l'] = 'l',
    ['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't',
    ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y', ['z'] = 'z',
};

bool pg_next_word(pg_lexer *lx, pg_word *w) {
	bool in = false;
	uint32_t hash = FNV_OFFSET, len = 0;
	const uint8_t *s = lx->s;
	uint32_t n = lx->n, i = lx->i;
	/* The ASCII fast path: skip separators, then take letters and digits. */
	while (i < n && s[i] < 0x80 && !ascii[s[i]]) {
		i++;
	}
	if (i < n && ascii[s[i]]) {
		in = true;
		w->start = i;
		do {
			uint8_t f = ascii[s[i]];
			hash = (hash ^ f) * FNV_PRIME;
			if (len < PG_MAX_WORD) {
				w->text[len] = (char)f;
			}
			len++;
			i++;
		} while (i < n && ascii[s[i]]);
		w->end = i;
		if (i == n || s[i] < 0x80) {
			/* An ASCII separator or the end: the word is complete. */
			lx->i = i < n ? i + 1 : i;
			w->hash = hash;
			w->len = len > PG_MAX_WORD ? PG_LONG_WORD : (uint8_t)len;
			return true;
		}
	}
	lx->i = i;
	while (lx->i < lx->n) {
		uint32_t size, c = decode(lx->s, lx->n, lx->i, &size);
		int k = SEP;
		if (c != BAD) {
			c = unmask(c);
			k = classify(c);
		}
		if (k == IGNORE) {
			lx->i += size;
			continue;
		}
		if (k == SEP) {
			lx->i += size;
			if (in) {
				break;
			}
			continue;
		}
		if (k == SINGLE && in) {
			break; /* the character is the next word */
		}
		if (!in) {
			in = true;
			w->start = lx->i;
		}
		uint8_t f[4];
		uint32_t fn = fold(c, f);
		for (uint32_t j = 0; j < fn; j++) {
			hash = (hash ^ f[j]) * FNV_PRIME;
			if (len < PG_MAX_WORD) {
				w->text[len] = (char)f[j];
			}
			len++;
		}
		lx->i += size;
		w->end = lx->i;
		if (k == SINGLE) {
			break;
		}
	}
	if (!in) {
		return false;
	}
	w->hash = hash;
	w->len = len > PG_MAX_WORD ? PG_LONG_WORD : (uint8_t)len;
	return true;
}

void pg_skip_words(pg_lexer *lx, const uint8_t *pairs) {
	const uint8_t *s = lx->s;
	uint32_t n = lx->n, i = lx->i;
	while (i < n && s[i] < 0x80) {
		uint8_t f0 = ascii[s[i]];
		if (!f0) {
			i++;
			continue;
		}
		uint8_t f1 = 0;
		if (i + 1 < n) {
			if (s[i + 1] >= 0x80) {
				break; /* the word may go on with a letter to fold: the lexer decides */
			}
			f1 = ascii[s[i + 1]];
		}
		uint32_t pair = (uint32_t)f0 << 7 | f1;
		if (pairs[pair >> 3] & (1u << (pair & 7))) {
			break;
		}
		uint32_t start = i;
		while (i < n && ascii[s[i]]) {
			i++;
		}
		if (i < n && s[i] >= 0x80) {
			i = start; /* the word goes on past ASCII: leave all of it to the lexer */
			break;
		}
	}
	lx->i = i;
}
