/*
 * The Sluice plugin ABI v1 (sdk/ABI.md): exports, memory ownership, input
 * decoding and the output buffer.
 *
 * The module is a WASI reactor: wasi-libc's crt1-reactor.o provides
 * _initialize. Each export is named with export_name, so the module exports
 * exactly the ABI's functions and its memory.
 */
#include <stdlib.h>
#include <string.h>

#include "promptguard.h"

#define EXPORT(name) __attribute__((export_name(name)))

__attribute__((import_module("sluice"), import_name("log"))) void sluice_log(int32_t level, const char *msg,
                                                                               uint32_t len);

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* The result limit of sdk/ABI.md section 4.2. */
#define MAX_RESULT (16u << 20)

/* Buffers handed to the host by sluice_alloc and not yet freed. The host
 * writes only into these, and sluice_configure and sluice_scan read only
 * inside them: a confused host gets an error, not a read of unrelated memory. */
static struct {
	uint32_t ptr, size;
} *allocs;
static uint32_t nallocs, cap_allocs;

static pg_phrases *config;

/* The output of the last configure or scan call. It points into out, or at a
 * constant message when out could not grow, and stays unchanged until the
 * next call. */
static pg_buf out;
static const char *out_ptr;
static uint32_t out_len;

static void set_output(void) {
	out_ptr = out.data;
	out_len = out.len;
}

static int32_t fail_with(const char *msg) {
	pg_buf_reset(&out);
	pg_buf_str(&out, msg);
	set_output();
	if (out.failed) {
		out_ptr = "promptguard: out of memory";
		out_len = (uint32_t)strlen(out_ptr);
	}
	return 1;
}

static void log_msg(int32_t level, const pg_buf *b) {
	if (!b->failed) {
		sluice_log(level, b->data, b->len);
	}
}

EXPORT("sluice_abi_version") int32_t sluice_abi_version(void) { return 1; }

EXPORT("sluice_alloc") uint32_t sluice_alloc(uint32_t size) {
	if (size == 0) {
		return 0;
	}
	void *table = allocs;
	if (!pg_grow(&table, &cap_allocs, nallocs + 1, sizeof *allocs)) {
		return 0;
	}
	allocs = table;
	void *p = malloc(size);
	if (!p) {
		return 0;
	}
	allocs[nallocs].ptr = (uint32_t)(uintptr_t)p;
	allocs[nallocs].size = size;
	nallocs++;
	return (uint32_t)(uintptr_t)p;
}

EXPORT("sluice_free") void sluice_free(uint32_t ptr) {
	for (uint32_t i = 0; i < nallocs; i++) {
		if (allocs[i].ptr == ptr) {
			free((void *)(uintptr_t)ptr);
			allocs[i] = allocs[--nallocs];
			return;
		}
	}
	/* Freeing what malloc did not hand out would corrupt the heap; ignore it. */
	pg_buf msg = {0};
	pg_buf_str(&msg, "promptguard: sluice_free of a pointer sluice_alloc did not return, ignored");
	log_msg(LOG_WARN, &msg);
	pg_buf_free(&msg);
}

/* host_bytes returns [ptr, ptr+len) if it lies inside a live sluice_alloc buffer. */
static const uint8_t *host_bytes(uint32_t ptr, uint32_t len) {
	for (uint32_t i = 0; i < nallocs; i++) {
		if (ptr >= allocs[i].ptr && (uint64_t)ptr + len <= (uint64_t)allocs[i].ptr + allocs[i].size) {
			return (const uint8_t *)(uintptr_t)ptr;
		}
	}
	return NULL;
}

static uint32_t le32(const uint8_t *p) {
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* write_manifest leaves the manifest in the output, as sluice_configure must
 * on success (sdk/ABI.md 4.4): {"types":[...]}, each distinct phrase type
 * once. The host fails any scan whose result holds a type not listed. */
#define MAX_TYPES 64
static bool write_manifest(const pg_phrases *ps) {
	uint32_t off[MAX_TYPES], len[MAX_TYPES], n = 0;
	pg_buf_reset(&out);
	pg_buf_str(&out, "{\"types\":[");
	for (uint32_t i = 0; i < ps->nphrases; i++) {
		const pg_phrase *p = &ps->phrases[i];
		bool seen = false;
		for (uint32_t j = 0; j < n && !seen; j++) {
			seen = len[j] == p->type_len && memcmp(ps->pool + off[j], ps->pool + p->type_off, p->type_len) == 0;
		}
		if (seen) {
			continue;
		}
		if (n == MAX_TYPES) {
			fail_with("promptguard: the phrases name more than 64 finding types");
			return false;
		}
		off[n] = p->type_off;
		len[n] = p->type_len;
		pg_buf_str(&out, n ? ",\"" : "\"");
		pg_buf_add(&out, ps->pool + p->type_off, p->type_len);
		pg_buf_add(&out, "\"", 1);
		n++;
	}
	pg_buf_str(&out, "]}");
	if (out.failed) {
		fail_with("promptguard: out of memory");
		return false;
	}
	set_output();
	return true;
}

EXPORT("sluice_configure") int32_t sluice_configure(uint32_t ptr, uint32_t len) {
	const uint8_t *json = NULL;
	if (len > 0 && !(json = host_bytes(ptr, len))) {
		return fail_with("promptguard: configuration is not inside a buffer from sluice_alloc");
	}
	pg_phrases *next = calloc(1, sizeof *next);
	if (!next) {
		return fail_with("promptguard: out of memory");
	}
	pg_buf_reset(&out);
	if (!pg_configure(next, json, len, &out)) {
		pg_phrases_free(next);
		free(next);
		if (out.failed || out.len == 0) {
			return fail_with("promptguard: configuration refused");
		}
		set_output();
		return 1;
	}
	if (config) {
		pg_phrases_free(config);
		free(config);
	}
	config = next;
	if (!write_manifest(config)) {
		return 1;
	}

	pg_buf msg = {0};
	pg_buf_str(&msg, "promptguard: ");
	pg_buf_u32(&msg, config->active);
	pg_buf_str(&msg, " phrases active (");
	pg_buf_u32(&msg, config->builtin);
	pg_buf_str(&msg, " built in, ");
	pg_buf_u32(&msg, config->configured);
	pg_buf_str(&msg, " configured), min_score ");
	pg_buf_score(&msg, config->min_score);
	log_msg(config->active ? LOG_INFO : LOG_WARN, &msg);
	pg_buf_free(&msg);
	return 0;
}

EXPORT("sluice_scan") int32_t sluice_scan(uint32_t ptr, uint32_t len) {
	if (!config) {
		return fail_with("promptguard: scan before sluice_configure");
	}
	const uint8_t *in = host_bytes(ptr, len);
	if (!in) {
		return fail_with("promptguard: input is not inside a buffer from sluice_alloc");
	}
	/* Check the whole layout first (sdk/ABI.md 4.1): a malformed input gets
	 * an error, never a partial result. Every text takes at least 4 bytes, so
	 * a huge count ends the loop at the end of the input. */
	if (len < 4) {
		return fail_with("promptguard: malformed input: shorter than its 4-byte text count");
	}
	uint32_t count = le32(in), off = 4;
	for (uint32_t i = 0; i < count; i++) {
		if (len - off < 4) {
			return fail_with("promptguard: malformed input: a text length runs past the end");
		}
		uint32_t n = le32(in + off);
		off += 4;
		if (n > len - off) {
			return fail_with("promptguard: malformed input: a text runs past the end");
		}
		off += n;
	}
	if (off != len) {
		return fail_with("promptguard: malformed input: bytes after the last text");
	}

	pg_buf_reset(&out);
	pg_buf_str(&out, "{\"findings\":[");
	uint32_t found = 0;
	off = 4;
	for (uint32_t i = 0; i < count && !out.failed && out.len <= MAX_RESULT; i++) {
		uint32_t n = le32(in + off);
		pg_scan(config, i, in + off + 4, n, &out, &found);
		off += 4 + n;
	}
	pg_buf_str(&out, "]}");
	if (out.failed) {
		return fail_with("promptguard: out of memory for the result");
	}
	if (out.len > MAX_RESULT) {
		return fail_with("promptguard: the findings do not fit the 16 MiB result limit");
	}
	set_output();
	return 0;
}

EXPORT("sluice_output") uint64_t sluice_output(void) {
	if (out_len == 0) {
		return 0;
	}
	return (uint64_t)(uintptr_t)out_ptr << 32 | out_len;
}
