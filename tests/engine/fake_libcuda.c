/* A stand-in for the CUDA driver library (libcuda.so.1) with the few
 * functions the engine calls to read a device's free memory, so that the
 * query is tested on machines without a GPU. Device N has (N + 1) GiB free,
 * as seen from its primary context; the counters let the test check that
 * every context pushed is popped and every retained one released. */
#include <stddef.h>

#define FAKE_DEVICES 2
#define GIB          (1024.0 * 1024.0 * 1024.0)

int fake_initialized, fake_retained, fake_released, fake_pushed, fake_popped, fake_fail_init;
static int contexts[FAKE_DEVICES]; /* a primary context is &contexts[device] */
static int *current;

int cuInit(unsigned flags)
{
    if (flags != 0 || fake_fail_init)
        return 1; /* CUDA_ERROR_INVALID_VALUE */
    fake_initialized = 1;
    return 0;
}

int cuDeviceGet(int *device, int ordinal)
{
    if (!fake_initialized)
        return 3; /* CUDA_ERROR_NOT_INITIALIZED */
    if (ordinal < 0 || ordinal >= FAKE_DEVICES)
        return 101; /* CUDA_ERROR_INVALID_DEVICE */
    *device = ordinal;
    return 0;
}

int cuDevicePrimaryCtxRetain(void **ctx, int device)
{
    *ctx = &contexts[device];
    fake_retained++;
    return 0;
}

int cuDevicePrimaryCtxRelease_v2(int device)
{
    (void)device;
    fake_released++;
    return 0;
}

int cuCtxPushCurrent_v2(void *ctx)
{
    current = ctx;
    fake_pushed++;
    return 0;
}

int cuCtxPopCurrent_v2(void **ctx)
{
    if (ctx)
        *ctx = current;
    current = NULL;
    fake_popped++;
    return 0;
}

int cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
    if (!current)
        return 201; /* CUDA_ERROR_INVALID_CONTEXT */
    long device = current - contexts;
    *free_bytes = (size_t)((double)(device + 1) * GIB);
    *total = (size_t)(8.0 * GIB);
    return 0;
}
