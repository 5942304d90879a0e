/*
 * The block bench's baseline: Debian's fio with io_uring on the same file,
 * run as a child, and as much of a JSON reader as fio's report needs.
 */
#include "bench_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

#define FIO_SLACK_MS 30000	/* fio's set-up and report, past its runtime */
#define FIO_MAX_OUT  (8u << 20) /* far more than a one-job report */
#define JSON_DEPTH   64

/* ---- JSON: just enough to walk to a member and read a number ------------------------------ */

struct span {
	const char *p, *end;
};

static const char *ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past the string at p (which is at its opening quote), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/*
 * Past the value at p, or NULL if it does not end inside the text. Nesting
 * is followed with a bounded stack, so a hostile report cannot recurse us
 * to death; scalars end at the next delimiter (fio writes no others).
 */
static const char *skip_value(const char *p, const char *end)
{
	char stack[JSON_DEPTH];
	int depth = 0;

	p = ws(p, end);
	if (p >= end)
		return NULL;
	if (*p != '{' && *p != '[') {
		if (*p == '"')
			return skip_string(p, end);
		while (p < end && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	while (p < end) {
		switch (*p) {
		case '"':
			p = skip_string(p, end);
			if (!p)
				return NULL;
			continue;
		case '{':
		case '[':
			if (depth == JSON_DEPTH)
				return NULL;
			stack[depth++] = *p == '{' ? '}' : ']';
			break;
		case '}':
		case ']':
			if (depth == 0 || stack[depth - 1] != *p)
				return NULL;
			if (--depth == 0)
				return p + 1;
			break;
		}
		p++;
	}
	return NULL;
}

/* In the object v, the value of member key: 0 with *out, or -1. */
static int member(struct span v, const char *key, struct span *out)
{
	size_t klen = strlen(key), n;
	const char *p = ws(v.p, v.end), *k, *e;

	if (p >= v.end || *p != '{')
		return -1;
	p = ws(p + 1, v.end);
	while (p < v.end && *p == '"') {
		k = p + 1;
		e = skip_string(p, v.end);
		if (!e)
			return -1;
		n = (size_t)(e - k - 1);
		p = ws(e, v.end);
		if (p >= v.end || *p != ':')
			return -1;
		p = ws(p + 1, v.end);
		e = skip_value(p, v.end);
		if (!e || e == p)
			return -1;
		/* fio's keys hold no escapes: comparing the raw bytes is enough. */
		if (n == klen && memcmp(k, key, klen) == 0) {
			out->p = p;
			out->end = e;
			return 0;
		}
		p = ws(e, v.end);
		if (p < v.end && *p == ',')
			p = ws(p + 1, v.end);
	}
	return -1;
}

/* In the array v, element i. */
static int element(struct span v, unsigned i, struct span *out)
{
	const char *p = ws(v.p, v.end), *e;

	if (p >= v.end || *p != '[')
		return -1;
	p = ws(p + 1, v.end);
	for (unsigned n = 0; p < v.end && *p != ']'; n++) {
		e = skip_value(p, v.end);
		if (!e)
			return -1;
		if (n == i) {
			out->p = p;
			out->end = e;
			return 0;
		}
		p = ws(e, v.end);
		if (p < v.end && *p == ',')
			p = ws(p + 1, v.end);
	}
	return -1;
}

static int number(struct span v, double *out)
{
	char buf[64], *end;
	size_t n = (size_t)(v.end - v.p);

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, v.p, n);
	buf[n] = '\0';
	*out = strtod(buf, &end);
	return end == buf + n ? 0 : -1;
}

/* Member names separated by '/' (fio's percentile keys hold dots); "#N" is element N. */
static int path_number(struct span v, const char *path, double *out)
{
	char name[64];

	while (*path) {
		size_t n = strcspn(path, "/");

		if (n == 0 || n >= sizeof(name))
			return -1;
		memcpy(name, path, n);
		name[n] = '\0';
		if (name[0] == '#' ? element(v, (unsigned)atoi(name + 1), &v) < 0
				   : member(v, name, &v) < 0)
			return -1;
		path += n;
		if (*path == '/')
			path++;
	}
	return number(v, out);
}

int blk_fio_parse(const char *text, size_t len, bool write, struct blk_figures *out, char *why,
		  size_t why_len)
{
	const char *start = memchr(text, '{', len);
	const char *dir = write ? "write" : "read";
	struct span root, job;
	double err = -1, v[4], ios;
	char path[96];
	const char *lat = "lat_ns";

	if (!start)
		return blk_fail(why, why_len, -EPROTO, "fio printed no JSON");
	root.p = start;
	root.end = text + len;
	if (member(root, "jobs", &job) < 0 || element(job, 0, &job) < 0)
		return blk_fail(why, why_len, -EPROTO, "fio's JSON has no jobs[0]");
	if (path_number(job, "error", &err) < 0 || err != 0)
		return blk_fail(why, why_len, -EIO, "fio's job reports error %g", err);
	snprintf(path, sizeof(path), "%s/%s/percentile/50.000000", dir, lat);
	/* Without --lat_percentiles (an older fio), only clat has percentiles. */
	if (path_number(job, path, &v[0]) < 0)
		lat = "clat_ns";
	snprintf(path, sizeof(path), "%s/iops", dir);
	if (path_number(job, path, &out->iops) < 0)
		return blk_fail(why, why_len, -EPROTO, "no jobs[0].%s.iops in fio's JSON", dir);
	snprintf(path, sizeof(path), "%s/total_ios", dir);
	if (path_number(job, path, &ios) < 0)
		return blk_fail(why, why_len, -EPROTO, "no jobs[0].%s.total_ios in fio's JSON", dir);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s/percentile/%s", dir, i < 2 ? lat : "clat_ns",
			 i % 2 ? "99.000000" : "50.000000");
		if (path_number(job, path, &v[i]) < 0)
			return blk_fail(why, why_len, -EPROTO, "no jobs[0].%s in fio's JSON", path);
	}
	if (ios <= 0)
		return blk_fail(why, why_len, -EIO, "fio did no %s at all", dir);
	out->ios = (uint64_t)ios;
	out->p50_us = v[0] / 1e3;
	out->p99_us = v[1] / 1e3;
	out->clat_p50_us = v[2] / 1e3;
	out->clat_p99_us = v[3] / 1e3;
	return 0;
}

/* ---- the child ------------------------------------------------------------------------ */

/*
 * argv with stdout and stderr into memfds; waits up to timeout_ms. Returns
 * the wait status (>= 0) or -errno; *out (malloc'd, NUL-terminated) and
 * *out_len get what it wrote to stdout, err what it wrote to stderr.
 */
static int run_child(char *const *argv, int timeout_ms, char **out, size_t *out_len, char *err,
		     size_t err_len)
{
	int ofd = memfd_create("fio-out", MFD_CLOEXEC), efd = memfd_create("fio-err", MFD_CLOEXEC);
	int st = 0, r;
	struct stat sb;
	ssize_t n;
	pid_t pid;

	*out = NULL;
	*out_len = 0;
	err[0] = '\0';
	if (ofd < 0 || efd < 0) {
		r = -errno;
		goto done;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto done;
	}
	if (pid == 0) {
		/* If the bench dies, fio stops too rather than writing on. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
			_exit(126);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	r = spawn_wait(pid, timeout_ms, &st);
	if (r < 0)
		goto done;
	n = pread(efd, err, err_len - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	if (fstat(ofd, &sb) < 0) {
		r = -errno;
		goto done;
	}
	if ((uint64_t)sb.st_size > FIO_MAX_OUT) {
		r = -EFBIG;
		goto done;
	}
	*out = malloc((size_t)sb.st_size + 1);
	if (!*out) {
		r = -ENOMEM;
		goto done;
	}
	n = pread(ofd, *out, (size_t)sb.st_size, 0);
	if (n < 0) {
		r = -errno;
		free(*out);
		*out = NULL;
		goto done;
	}
	(*out)[n] = '\0';
	*out_len = (size_t)n;
	r = st;
done:
	if (ofd >= 0)
		close(ofd);
	if (efd >= 0)
		close(efd);
	return r;
}

/* The first line of s, for a message. */
static const char *first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	return s;
}

int blk_fio_version(const char *fio, char *buf, size_t len, char *why, size_t why_len)
{
	char *argv[] = { (char *)fio, "--version", NULL }, err[256], *out;
	size_t n;
	int st = run_child(argv, 10000, &out, &n, err, sizeof(err));

	if (st < 0)
		return blk_fail(why, why_len, -ENOENT, "%s --version: %s", fio, strerror(-st));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || n == 0) {
		blk_fail(why, why_len, -ENOENT, "%s --version: %s", fio,
		     err[0] ? first_line(err) : "failed");
		free(out);
		return -ENOENT;
	}
	snprintf(buf, len, "%s", first_line(out));
	free(out);
	return 0;
}

int blk_fio_run(const struct blk_fio_job *job, struct blk_figures *out, char *why, size_t why_len)
{
	char filename[4200], size[32], depth[32], runtime[32], err[1024], *text;
	char *argv[] = { (char *)job->fio, "--name=mpdev-blk-baseline", filename, size,
			 "--ioengine=io_uring", "--direct=1",
			 job->write ? "--rw=randwrite" : "--rw=randread", "--bs=4k", depth, runtime,
			 "--time_based",
			 /* Uniform random offsets, as the mpdev driver draws them. */
			 "--norandommap", "--randrepeat=0",
			 /* Submission to completion, as the driver times a request. */
			 "--lat_percentiles=1", "--output-format=json", NULL };
	size_t n;
	int st, r;

	/* fio takes ':' in a file name as a separator of several files. */
	if (strchr(job->file, ':'))
		return blk_fail(why, why_len, -EINVAL, "fio cannot take a ':' in %s", job->file);
	snprintf(filename, sizeof(filename), "--filename=%s", job->file);
	snprintf(size, sizeof(size), "--size=%llu", (unsigned long long)job->size);
	snprintf(depth, sizeof(depth), "--iodepth=%d", job->qd);
	snprintf(runtime, sizeof(runtime), "--runtime=%d", job->seconds);
	st = run_child(argv, job->seconds * 1000 + FIO_SLACK_MS, &text, &n, err, sizeof(err));
	if (st < 0)
		return blk_fail(why, why_len, st, "fio: %s", strerror(-st));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		r = blk_fail(why, why_len, -EIO, "fio exited with status %d: %s",
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
			 err[0] ? first_line(err) : "(nothing on stderr)");
		free(text);
		return r;
	}
	r = blk_fio_parse(text, n, job->write, out, why, why_len);
	free(text);
	return r;
}
