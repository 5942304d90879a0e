/*
 * VERSION's capabilities: a small strict JSON reader (RFC 8259 syntax, one
 * object, bounded depth) that knows the members vfio-user defines and skips
 * the rest, and the writer of our own answer. No dependency: the text is a
 * few hundred bytes from an untrusted peer, and a general JSON library would
 * be more code to trust than this.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vfio_user.h"

#define MAX_DEPTH 8
#define MAX_KEY	  64

struct parser {
	const char *p, *end;
	const char *why;
	int depth;
};

static int fail(struct parser *ps, const char *why)
{
	if (!ps->why)
		ps->why = why;
	return -EINVAL;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool eat(struct parser *ps, char c)
{
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == c) {
		ps->p++;
		return true;
	}
	return false;
}

static bool peek(struct parser *ps, char c)
{
	skip_ws(ps);
	return ps->p < ps->end && *ps->p == c;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A string; its bytes (escapes resolved only for the ASCII we compare keys
 * with, anything else kept as a marker byte) go to out if out is not NULL.
 * A key longer than MAX_KEY cannot be one we know: it is kept truncated
 * with a marker so it matches nothing.
 */
static int parse_string(struct parser *ps, char *out, size_t out_len)
{
	size_t n = 0;

	if (!eat(ps, '"'))
		return fail(ps, "a string was expected");
	for (;;) {
		unsigned char c;
		char keep;

		if (ps->p >= ps->end)
			return fail(ps, "unterminated string");
		c = (unsigned char)*ps->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(ps, "control character in a string");
		keep = (char)c;
		if (c == '\\') {
			if (ps->p >= ps->end)
				return fail(ps, "unterminated escape");
			c = (unsigned char)*ps->p++;
			switch (c) {
			case '"':
			case '\\':
			case '/':
				keep = (char)c;
				break;
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				keep = '\x01';
				break;
			case 'u': {
				unsigned v = 0;

				for (int i = 0; i < 4; i++) {
					int h = ps->p < ps->end ? hexval(*ps->p) : -1;

					if (h < 0)
						return fail(ps, "bad \\u escape");
					v = v << 4 | (unsigned)h;
					ps->p++;
				}
				keep = v >= 0x20 && v < 0x7f ? (char)v : '\x01';
				break;
			}
			default:
				return fail(ps, "bad escape");
			}
		}
		if (out && n + 1 < out_len)
			out[n++] = keep;
		else if (out)
			out[out_len - 2] = '\x01';
	}
	if (out)
		out[n] = '\0';
	return 0;
}

/* A non-negative integer below 2^64; *is_uint false for any other number. */
static int parse_number(struct parser *ps, uint64_t *v, bool *is_uint)
{
	const char *s;
	bool neg = false, frac = false, overflow = false;

	skip_ws(ps);
	s = ps->p;
	*v = 0;
	if (ps->p < ps->end && *ps->p == '-') {
		neg = true;
		ps->p++;
	}
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "bad number");
	if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9')
		return fail(ps, "leading zero in a number");
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
		unsigned d = (unsigned)(*ps->p++ - '0');

		if (*v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			*v = *v * 10 + d;
	}
	if (ps->p < ps->end && *ps->p == '.') {
		frac = true;
		ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "bad fraction");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		frac = true;
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "bad exponent");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	*is_uint = !neg && !frac && !overflow && ps->p > s;
	return 0;
}

static int parse_literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	skip_ws(ps);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
		return fail(ps, "bad literal");
	ps->p += n;
	return 0;
}

static int skip_value(struct parser *ps);

/* Calls member(key) for each member; the callback parses the value. */
static int parse_object(struct parser *ps, int (*member)(struct parser *, const char *, void *),
			void *arg)
{
	char key[MAX_KEY + 2];
	int r;

	if (++ps->depth > MAX_DEPTH)
		return fail(ps, "nested too deep");
	if (!eat(ps, '{'))
		return fail(ps, "an object was expected");
	if (!eat(ps, '}')) {
		do {
			r = parse_string(ps, key, sizeof(key));
			if (r < 0)
				return r;
			if (!eat(ps, ':'))
				return fail(ps, "':' was expected");
			r = member ? member(ps, key, arg) : skip_value(ps);
			if (r < 0)
				return r;
		} while (eat(ps, ','));
		if (!eat(ps, '}'))
			return fail(ps, "'}' was expected");
	}
	ps->depth--;
	return 0;
}

static int skip_value(struct parser *ps)
{
	uint64_t v;
	bool u;
	int r;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "a value was expected");
	switch (*ps->p) {
	case '{':
		return parse_object(ps, NULL, NULL);
	case '[':
		if (++ps->depth > MAX_DEPTH)
			return fail(ps, "nested too deep");
		ps->p++;
		if (!eat(ps, ']')) {
			do {
				if ((r = skip_value(ps)) < 0)
					return r;
			} while (eat(ps, ','));
			if (!eat(ps, ']'))
				return fail(ps, "']' was expected");
		}
		ps->depth--;
		return 0;
	case '"':
		return parse_string(ps, NULL, 0);
	case 't':
		return parse_literal(ps, "true");
	case 'f':
		return parse_literal(ps, "false");
	case 'n':
		return parse_literal(ps, "null");
	default:
		return parse_number(ps, &v, &u);
	}
}

static int parse_uint(struct parser *ps, uint64_t *v, const char *why)
{
	bool u;
	int r = parse_number(ps, v, &u);

	if (r == 0 && !u)
		return fail(ps, why);
	return r;
}

static int parse_bool(struct parser *ps, bool *b, const char *why)
{
	if (peek(ps, 't')) {
		*b = true;
		return parse_literal(ps, "true");
	}
	if (peek(ps, 'f')) {
		*b = false;
		return parse_literal(ps, "false");
	}
	return fail(ps, why);
}

/* Each object we interpret: which known members were seen, to refuse a second one. */
struct seen {
	struct vfu_caps *c;
	unsigned bits;
};

static int once(struct parser *ps, struct seen *s, unsigned bit)
{
	if (s->bits & bit)
		return fail(ps, "a capability appears twice");
	s->bits |= bit;
	return 0;
}

static int twin_member(struct parser *ps, const char *key, void *arg)
{
	struct seen *s = arg;
	uint64_t idx;
	int r;

	if (!strcmp(key, "supported")) {
		if ((r = once(ps, s, 1)) < 0)
			return r;
		return parse_bool(ps, &s->c->twin_socket, "twin_socket.supported is not a boolean");
	}
	if (!strcmp(key, "fd_index")) {
		if ((r = once(ps, s, 2)) < 0)
			return r;
		/* Only meaningful in a server's reply; a client's is checked and ignored. */
		return parse_uint(ps, &idx, "twin_socket.fd_index is not an index");
	}
	return skip_value(ps);
}

static int migration_member(struct parser *ps, const char *key, void *arg)
{
	struct seen *s = arg;
	int r;

	if (!strcmp(key, "pgsize")) {
		if ((r = once(ps, s, 1)) < 0)
			return r;
		return parse_uint(ps, &s->c->migration_pgsize, "migration.pgsize is not a number");
	}
	if (!strcmp(key, "max_bitmap_size")) {
		if ((r = once(ps, s, 2)) < 0)
			return r;
		return parse_uint(ps, &s->c->migration_max_bitmap,
				  "migration.max_bitmap_size is not a number");
	}
	return skip_value(ps);
}

static int caps_member(struct parser *ps, const char *key, void *arg)
{
	static const struct {
		const char *name;
		size_t off;
		const char *why;
	} nums[] = {
		{ "max_msg_fds", offsetof(struct vfu_caps, max_msg_fds),
		  "max_msg_fds is not a non-negative integer" },
		{ "max_data_xfer_size", offsetof(struct vfu_caps, max_data_xfer_size),
		  "max_data_xfer_size is not a non-negative integer" },
		{ "max_dma_maps", offsetof(struct vfu_caps, max_dma_maps),
		  "max_dma_maps is not a non-negative integer" },
		{ "pgsizes", offsetof(struct vfu_caps, pgsizes),
		  "pgsizes is not a non-negative integer" },
	};
	struct seen *s = arg;
	int r;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (!strcmp(key, nums[i].name)) {
			if ((r = once(ps, s, 1u << i)) < 0)
				return r;
			return parse_uint(ps, (uint64_t *)((char *)s->c + nums[i].off),
					  nums[i].why);
		}
	if (!strcmp(key, "write_multiple")) {
		if ((r = once(ps, s, 1u << 8)) < 0)
			return r;
		return parse_bool(ps, &s->c->write_multiple, "write_multiple is not a boolean");
	}
	if (!strcmp(key, "twin_socket")) {
		struct seen sub = { .c = s->c };

		if ((r = once(ps, s, 1u << 9)) < 0)
			return r;
		if (!peek(ps, '{'))
			return fail(ps, "twin_socket is not an object");
		return parse_object(ps, twin_member, &sub);
	}
	if (!strcmp(key, "migration")) {
		struct seen sub = { .c = s->c };

		if ((r = once(ps, s, 1u << 10)) < 0)
			return r;
		if (!peek(ps, '{'))
			return fail(ps, "migration is not an object");
		s->c->migration = true;
		return parse_object(ps, migration_member, &sub);
	}
	return skip_value(ps);
}

static int top_member(struct parser *ps, const char *key, void *arg)
{
	struct seen *s = arg;
	int r;

	if (strcmp(key, "capabilities"))
		return skip_value(ps);
	struct seen sub = { .c = s->c };

	if ((r = once(ps, s, 1)) < 0)
		return r;
	if (!peek(ps, '{'))
		return fail(ps, "capabilities is not an object");
	return parse_object(ps, caps_member, &sub);
}

void vfu_caps_default(struct vfu_caps *c)
{
	*c = (struct vfu_caps){
		.max_msg_fds = VFU_DEF_MAX_FDS,
		.max_data_xfer_size = VFU_DEF_MAX_XFER,
		.max_dma_maps = VFU_DEF_MAX_DMA_MAPS,
		.pgsizes = VFU_DEF_PGSIZES,
	};
}

int vfu_caps_parse(const char *json, size_t len, struct vfu_caps *c, const char **why)
{
	struct parser ps = { .p = json, .end = json + len };
	struct seen top = { .c = c };
	int r;

	vfu_caps_default(c);
	*why = NULL;
	if (len > VFU_CAPS_MAX_LEN) {
		*why = "capabilities too long";
		return -EINVAL;
	}
	if (!peek(&ps, '{'))
		r = fail(&ps, "capabilities are not a JSON object");
	else
		r = parse_object(&ps, top_member, &top);
	skip_ws(&ps);
	if (r == 0 && ps.p != ps.end)
		r = fail(&ps, "bytes after the JSON object");
	if (r < 0) {
		vfu_caps_default(c);
		*why = ps.why;
	}
	return r;
}

int vfu_caps_format(const struct vfu_caps *c, char *buf, size_t len)
{
	int n = snprintf(buf, len,
			 "{\"capabilities\":{\"max_msg_fds\":%" PRIu64
			 ",\"max_data_xfer_size\":%" PRIu64 ",\"pgsizes\":%" PRIu64
			 ",\"max_dma_maps\":%" PRIu64 "%s%s}}",
			 c->max_msg_fds, c->max_data_xfer_size, c->pgsizes, c->max_dma_maps,
			 c->write_multiple ? ",\"write_multiple\":true" : "",
			 c->twin_socket ? ",\"twin_socket\":{\"supported\":true}" : "");

	if (n < 0 || (size_t)n + 1 > len)
		return -ENOSPC;
	return n + 1;
}
