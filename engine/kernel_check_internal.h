// KVSERVE_KERNEL_CHECK(cond, msg): base/check.h's KVSERVE_CHECK_MSG under the name the kernel
// sources under rewrite (kernels.cc, quant/) still use; new code includes base/check.h.
#ifndef KVSERVE_ENGINE_KERNEL_CHECK_INTERNAL_H_
#define KVSERVE_ENGINE_KERNEL_CHECK_INTERNAL_H_

#include "base/check.h"

#define KVSERVE_KERNEL_CHECK(cond, msg) KVSERVE_CHECK_MSG(cond, msg)

#endif  // KVSERVE_ENGINE_KERNEL_CHECK_INTERNAL_H_
