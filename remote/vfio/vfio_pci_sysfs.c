/* What sysfs says about a VFIO device (PCI or mediated), its driver and its IOMMU group. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vfio_iommu.h"

/* The basename of the symlink at path (e.g. a driver's name), or "" if none. */
static const char *link_name(const char *path, char *buf, size_t len)
{
	char target[PATH_MAX];
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	if (n <= 0)
		return "";
	target[n] = '\0';
	snprintf(buf, len, "%s", basename(target));
	return buf;
}

bool vfio_name_is_mdev(const char *name)
{
	return !strchr(name, ':');
}

void vfio_sysfs_dev_dir(const struct vfio_sys *sys, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/bus/%s/devices/%s", sys->sysfs_root,
		 vfio_name_is_mdev(name) ? "mdev" : "pci", name);
}

static const char *driver_of(const struct vfio_sys *sys, const char *bdf, char *buf, size_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", sys->sysfs_root, bdf);
	return link_name(path, buf, len);
}

int vfio_check_bound(const struct vfio_sys *sys, const char *bdf, struct mpdev_error *err)
{
	char path[PATH_MAX], drv[NAME_MAX + 1];

	if (vfio_name_is_mdev(bdf)) {
		/* A mediated device is bound to its parent's mdev driver (mtty, ...). */
		vfio_sysfs_dev_dir(sys, bdf, path, sizeof(path));
		if (access(path, F_OK) != 0)
			return mpdev_error_set(err, ENODEV,
					       "no mediated device %s (create it through "
					       "/sys/class/mdev_bus/PARENT/mdev_supported_types/"
					       "TYPE/create)",
					       bdf);
		strncat(path, "/driver", sizeof(path) - strlen(path) - 1);
		if (!link_name(path, drv, sizeof(drv))[0])
			return mpdev_error_set(err, ENODEV,
					       "mediated device %s is bound to no driver (is its "
					       "parent's driver loaded?)",
					       bdf);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", sys->sysfs_root, bdf);
	if (access(path, F_OK) != 0)
		return mpdev_error_set(err, ENODEV, "no PCI device %s (see lspci -D)", bdf);
	driver_of(sys, bdf, drv, sizeof(drv));
	if (!drv[0])
		return mpdev_error_set(err, ENODEV,
				       "%s is not bound to any driver: bind it to vfio-pci "
				       "(driverctl set-override %s vfio-pci)",
				       bdf, bdf);
	if (strcmp(drv, "vfio-pci") != 0)
		return mpdev_error_set(err, ENODEV,
				       "%s is bound to %s, not vfio-pci (driverctl set-override %s "
				       "vfio-pci)",
				       bdf, drv, bdf);
	return 0;
}

int vfio_group_of(const struct vfio_sys *sys, const char *bdf, struct mpdev_error *err)
{
	char path[PATH_MAX], name[NAME_MAX + 1];
	char *end;
	long group;

	vfio_sysfs_dev_dir(sys, bdf, path, sizeof(path));
	strncat(path, "/iommu_group", sizeof(path) - strlen(path) - 1);
	if (!link_name(path, name, sizeof(name))[0])
		return mpdev_error_set(err, ENODEV,
				       "%s has no IOMMU group: the host has no IOMMU enabled "
				       "(intel_iommu=on / amd_iommu=on on the kernel command line)",
				       bdf);
	group = strtol(name, &end, 10);
	if (*end || group < 0 || group > INT_MAX)
		return mpdev_error_set(err, EINVAL, "%s: unexpected IOMMU group '%s'", bdf, name);
	return (int)group;
}

/* Drivers the kernel lets share a group with a VFIO user. */
static int driver_allowed(const char *drv)
{
	return !drv[0] || !strcmp(drv, "vfio-pci") || !strcmp(drv, "pci-stub") ||
	       !strcmp(drv, "pcieport");
}

int vfio_group_check_viable(const struct vfio_sys *sys, int group, struct mpdev_error *err)
{
	char path[PATH_MAX], culprits[MPDEV_ERROR_MSG_MAX] = "";
	size_t used = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices", sys->sysfs_root, group);
	d = opendir(path);
	if (!d)
		return mpdev_error_set(err, ENODEV, "IOMMU group %d: %s", group, strerror(errno));
	while ((de = readdir(d))) {
		char drv[NAME_MAX + 1];
		int n;

		if (de->d_name[0] == '.')
			continue;
		driver_of(sys, de->d_name, drv, sizeof(drv));
		if (driver_allowed(drv))
			continue;
		n = snprintf(culprits + used, sizeof(culprits) - used, "%s%s (%s)",
			     used ? ", " : "", de->d_name, drv);
		if (n > 0 && (size_t)n < sizeof(culprits) - used)
			used += (size_t)n;
	}
	closedir(d);
	if (!used)
		return 0;
	return mpdev_error_set(err, EBUSY,
			       "IOMMU group %d is not viable: every device in it must be bound to "
			       "vfio-pci or unbound; these are not: %s",
			       group, culprits);
}

int vfio_check_memlock(uint64_t pinned_after, struct mpdev_error *err)
{
	struct rlimit rl;

	/* Root keeps CAP_IPC_LOCK until the sandbox drops it; then the limit counts. */
	if (geteuid() == 0 || getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	if (pinned_after <= rl.rlim_cur)
		return 0;
	return mpdev_error_set(err, ENOMEM,
			       "the memlock limit is %llu KiB but the memory table needs %llu KiB "
			       "pinned: raise it (LimitMEMLOCK= in the unit, or ulimit -l)",
			       (unsigned long long)rl.rlim_cur >> 10,
			       (unsigned long long)pinned_after >> 10);
}
