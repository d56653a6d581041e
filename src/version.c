/*
 * version.c -- the library's version, as checkpoints, run reports and
 * --version give it.
 */
#include "internal.h"

const char *mrf_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
    return STR(MRF_VERSION_MAJOR) "." STR(MRF_VERSION_MINOR) "." STR(MRF_VERSION_PATCH);
#undef STR
#undef STR2
}
