/* Growable buffers and the few number formats the plugin writes. */
#include <stdlib.h>
#include <string.h>

#include "promptguard.h"

bool pg_grow(void **p, uint32_t *cap, uint32_t need, size_t size) {
	if (need <= *cap) {
		return true;
	}
	uint32_t c = *cap ? *cap : 16;
	while (c < need) {
		if (c > UINT32_MAX / 2) {
			return false;
		}
		c *= 2;
	}
	if ((uint64_t)c * size > SIZE_MAX) {
		return false;
	}
	void *q = realloc(*p, (size_t)c * size);
	if (!q) {
		return false;
	}
	*p = q;
	*cap = c;
	return true;
}

void pg_buf_reset(pg_buf *b) {
	b->len = 0;
	b->failed = false;
}

void pg_buf_free(pg_buf *b) {
	free(b->data);
	*b = (pg_buf){0};
}

void pg_buf_add(pg_buf *b, const void *p, uint32_t n) {
	if (b->failed || n == 0) {
		return;
	}
	if (n > UINT32_MAX - b->len) {
		b->failed = true;
		return;
	}
	void *data = b->data;
	if (!pg_grow(&data, &b->cap, b->len + n, 1)) {
		b->failed = true;
		return;
	}
	b->data = data;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void pg_buf_str(pg_buf *b, const char *s) { pg_buf_add(b, s, (uint32_t)strlen(s)); }

void pg_buf_u32(pg_buf *b, uint32_t v) {
	char digits[10];
	uint32_t i = sizeof digits;
	do {
		digits[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	pg_buf_add(b, digits + i, (uint32_t)sizeof digits - i);
}

void pg_buf_score(pg_buf *b, uint32_t milli) {
	if (milli >= 1000) {
		pg_buf_add(b, "1", 1);
		return;
	}
	char s[5] = {'0', '.', (char)('0' + milli / 100), (char)('0' + milli / 10 % 10), (char)('0' + milli % 10)};
	uint32_t n = 5;
	while (n > 2 && s[n - 1] == '0') {
		n--;
	}
	pg_buf_add(b, s, n == 2 ? 1 : n); /* 0 rather than "0." */
}

void pg_buf_quoted(pg_buf *b, const char *s, uint32_t n, uint32_t max) {
	pg_buf_add(b, "\"", 1);
	for (uint32_t i = 0; i < n && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
			c = '?';
		}
		pg_buf_add(b, &c, 1);
	}
	if (n > max) {
		pg_buf_str(b, "...");
	}
	pg_buf_add(b, "\"", 1);
}
