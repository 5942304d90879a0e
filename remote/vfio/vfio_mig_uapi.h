/*
 * The VFIO migration v2, DMA-logging and iommufd dirty-tracking uAPI pieces
 * mpdev uses, for systems whose linux-libc-dev predates them (Debian 12's
 * 6.1 headers have MIG_DEVICE_STATE and DMA logging but not PRE_COPY,
 * GET_PRECOPY_INFO or MIG_DATA_SIZE; no linux/iommufd.h at all). Each is
 * defined only where the installed headers lack it; layouts and numbers are
 * the kernel's (6.12: include/uapi/linux/vfio.h, include/uapi/linux/iommufd.h).
 */
#ifndef MPDEV_VFIO_MIG_UAPI_H
#define MPDEV_VFIO_MIG_UAPI_H

#include <linux/types.h>
#include <linux/vfio.h>

#include "iommufd_uapi.h"

#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif

/* enum vfio_device_mig_state gained these in 6.2; an enum cannot be tested, so by number. */
#define MPDEV_VFIO_DEVICE_STATE_PRE_COPY     6
#define MPDEV_VFIO_DEVICE_STATE_PRE_COPY_P2P 7

#ifndef VFIO_MIG_GET_PRECOPY_INFO
struct vfio_precopy_info {
	__u32 argsz;
	__u32 flags;
	__aligned_u64 initial_bytes;
	__aligned_u64 dirty_bytes;
};
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif

#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
struct vfio_device_feature_mig_data_size {
	__aligned_u64 stop_copy_length;
};
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
#endif

#ifndef VFIO_DEVICE_FEATURE_DMA_LOGGING_START
struct vfio_device_feature_dma_logging_control {
	__aligned_u64 page_size;
	__u32 num_ranges;
	__u32 __reserved;
	__aligned_u64 ranges;
};
struct vfio_device_feature_dma_logging_range {
	__aligned_u64 iova;
	__aligned_u64 length;
};
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_START 6
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP  7
struct vfio_device_feature_dma_logging_report {
	__aligned_u64 iova;
	__aligned_u64 length;
	__aligned_u64 page_size;
	__aligned_u64 bitmap;
};
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT 8
#endif

/* iommufd's dirty tracking (6.7+): per HWPT, allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING. */
#ifndef IOMMU_GET_HW_INFO
#define IOMMUFD_CMD_GET_HW_INFO 0x8a

enum iommu_hw_info_type {
	IOMMU_HW_INFO_TYPE_NONE = 0,
	IOMMU_HW_INFO_TYPE_INTEL_VTD = 1,
	IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2,
};

enum iommufd_hw_capabilities {
	IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0,
};

struct iommu_hw_info {
	__u32 size;
	__u32 flags;
	__u32 dev_id;
	__u32 data_len;
	__aligned_u64 data_uptr;
	__u32 out_data_type;
	__u32 __reserved;
	__aligned_u64 out_capabilities;
};
#define IOMMU_GET_HW_INFO _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO)

/* What IOMMU_GET_HW_INFO fills in for VT-d: the unit's capability registers. */
struct iommu_hw_info_vtd {
	__u32 flags;
	__u32 __reserved;
	__aligned_u64 cap_reg;
	__aligned_u64 ecap_reg;
};
#endif

#endif
