/* unit.h -- the shared main() of mrflow's CUnit programs.  Each program
 * defines `static CU_TestInfo tests[]` and includes this after it; the exit
 * status is automake's: 0 pass, 1 fail, 99 error. */
#ifndef MRF_UNIT_H
#define MRF_UNIT_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>

static int unit_main(const char *suite, CU_TestInfo *tests)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 99;
    CU_SuiteInfo suites[] = {{suite, NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        CU_cleanup_registry();
        return 99;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return failed ? 1 : (run ? 0 : 99);
}

#endif
