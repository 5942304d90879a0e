/* vfio-lab: an mtty device migrated between two remotes (lab_mtty_mig.c). */
#ifndef MPDEV_LAB_MTTY_MIG_H
#define MPDEV_LAB_MTTY_MIG_H

/* Migrates mtty device uuid (one remote) into uuid2 (another), with iommu. */
void run_mtty_migrate(const char *uuid, const char *uuid2, const char *iommu);

#endif
