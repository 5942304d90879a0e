#include "fdident.h"

#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

int fd_same_file(int a, int b)
{
	pid_t self = getpid();

	if (a < 0 || b < 0)
		return 0;
	if (a == b)
		return 1;
	return syscall(SYS_kcmp, self, self, KCMP_FILE, a, b) == 0;
}
