/*
 * What the vfio-lab drivers share: one line per check, BAR0 access, guest
 * RAM as a sealed memfd, edu's DMA, and a sandboxed mpdev-remote started
 * listening and stopped with its exit status checked.
 */
#ifndef MPDEV_LAB_UTIL_H
#define MPDEV_LAB_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "edu.h" /* the register layout (remote/emu/edu.h) */
#include "libmpdev.h"

/* Guest RAM handed to the device: below edu's 28-bit DMA limit. */
#define RAM_GPA	    0x1000000ull
#define RAM_SIZE    (4ull << 20)
#define SPARE_GPA   0x2000000ull /* never in the table */
#define DMA_LEN	    4000u	 /* edu aborts QEMU 7.2 at exactly 4096 */
#define IRQ_WAIT_MS 3000
#define QUIET_MS    300

extern int lab_failures;	   /* checks that failed so far */
extern const char *lab_remote_bin; /* the mpdev-remote to start */

/* Prints "CHECK name ok|FAIL[: details]" and counts a failure. */
void check(int ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint32_t rd(struct mpdev *d, uint64_t off);
int wr(struct mpdev *d, uint64_t off, uint32_t v);
/* Whether fd becomes readable within ms; drains it. */
int fired(int fd, int ms);
/* A sealed memfd of size bytes, mapped at *map; -1 on failure. */
int sealed_memfd(uint64_t size, uint8_t **map);
/* One edu DMA; each takes ~100 ms under TCG. Returns 0 once the command is done. */
int edu_dma(struct mpdev *d, uint64_t src, uint64_t dst, uint32_t len, uint32_t cmd);
/*
 * edu copies 1000 bytes of guest RAM at gpa (ram: the same bytes here) into
 * its buffer and back 0x1000 further on; whether they arrived. Bus
 * mastering must be on.
 */
bool edu_round_trip(struct mpdev *d, uint8_t *ram, uint64_t gpa, uint8_t seed);
/* A listening remote: args (NULL-terminated) then --socket path, the sandbox's uid, -v. */
pid_t start_remote_args(const char *const *args, const char *path);
pid_t start_remote(const char *spec, const char *iommu, const char *intx, const char *path);
/* Connects, retrying while the remote starts; NULL if it exits or never accepts. */
struct mpdev *connect_remote(const char *path, pid_t pid);
/* SIGTERM, then a check that it exits 0 within 10 s. */
void stop_remote(pid_t pid);
/* Prints the final "LAB RESULT" line run-lab.sh judges; returns the exit status. */
int lab_result(void);

#endif
