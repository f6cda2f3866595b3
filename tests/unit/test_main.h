/* test_main.h: the main() every unit test shares: run one Suite, exit 0
 * when every test passed. */
#ifndef TEST_MAIN_H
#define TEST_MAIN_H
#include <check.h>
#include <stdlib.h>

#define TEST_MAIN(suite_fn)                                         \
    int main(void)                                                  \
    {                                                               \
        SRunner *sr = srunner_create(suite_fn());                   \
        srunner_run_all(sr, CK_NORMAL);                             \
        int failed = srunner_ntests_failed(sr);                     \
        srunner_free(sr);                                           \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;           \
    }
#endif
