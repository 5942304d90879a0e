#include "fdrelease.h"

#include <unistd.h>

static void (*release_fn)(int fd);

void fd_release(int fd)
{
	if (fd < 0)
		return;
	if (release_fn)
		release_fn(fd);
	else
		close(fd);
}

void fd_release_set_handler(void (*fn)(int fd))
{
	release_fn = fn;
}
