/* test_config.c -- size and option parsing. */
#include <stdlib.h>

#include "internal.h"
#include "stage.h"
#include "unit.h"

static void test_sizes(void)
{
    struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"123", 123},
        {"4K", 4096},
        {"4k", 4096},
        {"64M", 64ull << 20},
        {"1G", 1ull << 30},
        {"1.5G", 3ull << 29},
        {"2GiB", 2ull << 30},
        {"10MB", 10ull << 20},
        {"1T", 1ull << 40},
        {"100B", 100},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 7;
        CU_ASSERT_EQUAL(mrf__parse_size(ok[i].s, &v), MRF_OK);
        CU_ASSERT_EQUAL(v, ok[i].v);
    }
    const char *bad[] = {"",    "G",   "abc", "-1",  "+5",    " 5",
                         "5 ",  "1.5", "12Q", "1GG", "1e400", "99999999999999999999T",
                         "nan", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        CU_ASSERT_NOT_EQUAL(mrf__parse_size(bad[i], &v), MRF_OK);
        CU_ASSERT_EQUAL(v, 7); /* outputs written only on success */
    }
}

static int parse(int argc, char **argv, mrf__options *o)
{
    char err[MRF_ERRLEN];
    return mrf__parse_options(argc, argv, NULL, o, err, sizeof err);
}

static void test_options(void)
{
    mrf__options o;
    char *a1[] = {"p",          "--input",   "a",           "b",  "--output",
                  "o",          "--input=c", "--task-size", "2M", "--buckets=16",
                  "--overwrite"};
    CU_ASSERT_EQUAL_FATAL(parse(11, a1, &o), MRF_OK);
    CU_ASSERT_EQUAL(o.n_inputs, 3);
    CU_ASSERT_STRING_EQUAL(o.inputs[2], "c");
    CU_ASSERT_STRING_EQUAL(o.output, "o");
    CU_ASSERT_EQUAL(o.task_size, 2u << 20);
    CU_ASSERT_TRUE(o.task_size_set);
    CU_ASSERT_EQUAL(o.buckets, 16);
    CU_ASSERT_TRUE(o.overwrite);
    CU_ASSERT_EQUAL(o.bind, MRF__BIND_AUTO);
    mrf__options_free(&o);
    char *b1[] = {"p", "--input", "a", "--output", "o", "--bind", "numa"};
    CU_ASSERT_EQUAL_FATAL(parse(7, b1, &o), MRF_OK);
    CU_ASSERT_EQUAL(o.bind, MRF__BIND_NUMA);
    mrf__options_free(&o);
    char *b2[] = {"p", "--input", "a", "--output", "o", "--bind=none"};
    CU_ASSERT_EQUAL_FATAL(parse(6, b2, &o), MRF_OK);
    CU_ASSERT_EQUAL(o.bind, MRF__BIND_NONE);
    mrf__options_free(&o);

    char *bad1[] = {"p", "--input", "a", "--output", "o", "--bogus"};
    char *bad2[] = {"p", "--input", "a", "--output"};
    char *bad3[] = {"p", "--output", "o"};
    char *bad4[] = {"p", "--input", "--output", "o"};
    char *bad5[] = {"p", "--input", "a", "--output", "o", "--buckets", "0"};
    char *bad6[] = {"p", "--input", "a", "--output", "o", "--task-size", "lots"};
    CU_ASSERT_EQUAL(parse(6, bad1, &o), MRF_EUSAGE);
    CU_ASSERT_EQUAL(parse(4, bad2, &o), MRF_EUSAGE);
    CU_ASSERT_EQUAL(parse(3, bad3, &o), MRF_EUSAGE);
    CU_ASSERT_EQUAL(parse(4, bad4, &o), MRF_EUSAGE);
    CU_ASSERT_EQUAL(parse(7, bad5, &o), MRF_EUSAGE);
    CU_ASSERT_EQUAL(parse(7, bad6, &o), MRF_EUSAGE);
    char *bad7[] = {"p", "--input", "a", "--output", "o", "--bind", "socket"};
    CU_ASSERT_EQUAL(parse(7, bad7, &o), MRF_EUSAGE);
    char *help[] = {"p", "--help"};
    CU_ASSERT_EQUAL(parse(2, help, &o), MRF_OK);
    CU_ASSERT_TRUE(o.help);
    mrf__options_free(&o);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static void test_memory_options(void)
{
    mrf__options o;
    char *d[] = {"p", "--input", "a", "--output", "o"};
    CU_ASSERT_EQUAL_FATAL(parse(5, d, &o), MRF_OK);
    CU_ASSERT_EQUAL(o.memory, 0); /* the node's fair share, decided at run time */
    CU_ASSERT_PTR_NULL(o.spill_dir);
    CU_ASSERT_EQUAL(o.compress, MRF__COMPRESS_AUTO);
    CU_ASSERT_EQUAL(o.compress_level, 1);
    mrf__options_free(&o);
    char *a[] = {
        "p",           "--input",  "a",          "--output", "o",       "--memory",      "64M",
        "--spill-dir", "/scratch", "--compress", "zstd:3",   "--fault", "corrupt:rank=2"};
    CU_ASSERT_EQUAL_FATAL(parse(13, a, &o), MRF_OK);
    CU_ASSERT_EQUAL(o.memory, 64u << 20);
    CU_ASSERT_STRING_EQUAL(o.spill_dir, "/scratch");
    CU_ASSERT_EQUAL(o.compress, MRF__COMPRESS_ZSTD);
    CU_ASSERT_EQUAL(o.compress_level, 3);
    CU_ASSERT_EQUAL(o.corrupt_rank, 2);
    CU_ASSERT_EQUAL(o.corrupt_spill_rank, -1);
    mrf__options_free(&o);
    char *b[] = {
        "p", "--input", "a", "--output", "o", "--compress=off", "--fault=corrupt-spill:rank=0"};
    CU_ASSERT_EQUAL_FATAL(parse(7, b, &o), MRF_OK);
    CU_ASSERT_EQUAL(o.compress, MRF__COMPRESS_OFF);
    CU_ASSERT_EQUAL(o.corrupt_spill_rank, 0);
    mrf__options_free(&o);
    const char *bad[][2] = {{"--memory", "15M"},           {"--memory", "x"},
                            {"--compress", "lz4"},         {"--compress", "zstd:0"},
                            {"--compress", "zstd:20"},     {"--spill-dir", ""},
                            {"--fault", "corrupt:rank=-1"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *v[] = {"p", "--input", "a", "--output", "o", (char *)bad[i][0], (char *)bad[i][1]};
        CU_ASSERT_EQUAL(parse(7, v, &o), MRF_EUSAGE);
    }
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static int odd_only(const char *v, char *err, size_t errlen)
{
    if (atoi(v) % 2)
        return 0;
    snprintf(err, errlen, "must be odd");
    return -1;
}

/* A job's own options: parsed beside the engine's, kinds, defaults,
 * required ones, checks; the getters read what was parsed. */
static void test_job_options(void)
{
    static const mrf_job_option decl[] = {
        {"bins", MRF_OPTION_INT, "N", "bins", "11", odd_only},
        {"lo", MRF_OPTION_DOUBLE, "X", "low end", NULL, NULL},
        {"field", MRF_OPTION_STRING, "NAME", "a field", "", NULL},
        {NULL, 0, NULL, NULL, NULL, NULL},
    };
    char err[MRF_ERRLEN];
    mrf__options o;
    char *a[] = {"p", "--input", "x", "--lo=-2.5", "--output", "o", "--bins", "7"};
    CU_ASSERT_EQUAL_FATAL(mrf__parse_options(8, a, decl, &o, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL(o.n_inputs, 1); /* --input stopped at --lo */
    mrf_emitter e = {.opt = &o}, *em = &e;
    CU_ASSERT_EQUAL(mrf_option_int(em, "bins"), 7);
    CU_ASSERT_DOUBLE_EQUAL(mrf_option_double(em, "lo"), -2.5, 0);
    CU_ASSERT_STRING_EQUAL(mrf_option(em, "field"), ""); /* its default */
    CU_ASSERT_PTR_NULL(mrf_option(em, "nope"));
    CU_ASSERT_PTR_NULL(mrf_option(NULL, "bins"));
    mrf__options_free(&o);
    static const struct {
        int argc;
        char *argv[8];
        const char *says;
    } bad[] = {
        {5, {"p", "--input", "x", "--output", "o"}, "--lo X is required"},
        {7, {"p", "--input", "x", "--output", "o", "--lo", "abc"}, "not a finite number"},
        {7, {"p", "--input", "x", "--output", "o", "--lo", "inf"}, "not a finite number"},
        {8, {"p", "--input", "x", "--output", "o", "--lo=1", "--bins", "4"}, "must be odd"},
        {8, {"p", "--input", "x", "--output", "o", "--lo=1", "--bins", "3x"}, "not an integer"},
        {6, {"p", "--input", "x", "--output", "o", "--lo"}, "--lo needs a value"},
        {7, {"p", "--input", "x", "--output", "o", "--lo=1", "--lox"}, "unknown option"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CU_ASSERT_EQUAL(
            mrf__parse_options(bad[i].argc, (char **)bad[i].argv, decl, &o, err, sizeof err),
            MRF_EUSAGE);
        if (!strstr(err, bad[i].says))
            fprintf(stderr, "job options case %zu: '%s' lacks '%s'\n", i, err, bad[i].says);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].says));
    }
    /* --help needs no required option */
    char *h[] = {"p", "--help"};
    CU_ASSERT_EQUAL(mrf__parse_options(2, h, decl, &o, err, sizeof err), MRF_OK);
    mrf__options_free(&o);
    /* declarations: an engine option's name, twice, a bad name */
    CU_ASSERT_TRUE(mrf__engine_option("output"));
    CU_ASSERT_TRUE(mrf__engine_option("task-size"));
    CU_ASSERT_FALSE(mrf__engine_option("bins"));
    static const mrf_job_option clash[] = {{"memory", 0, NULL, "x", "1", NULL}, {NULL}};
    static const mrf_job_option twice[] = {
        {"a", 0, NULL, "x", "1", NULL}, {"a", 0, NULL, "y", "1", NULL}, {NULL}};
    static const mrf_job_option badname[] = {{"Bad_Name", 0, NULL, "x", "1", NULL}, {NULL}};
    mrf_job_spec spec = {.name = "t", .options = clash};
    CU_ASSERT_EQUAL(mrf__jobopt_check_decl(&spec), MRF_OK);     /* well formed ... */
    CU_ASSERT_EQUAL(mrf__check_job_options(&spec), MRF_EINVAL); /* ... but the engine's */
    spec.options = twice;
    CU_ASSERT_EQUAL(mrf__jobopt_check_decl(&spec), MRF_EINVAL);
    spec.options = badname;
    CU_ASSERT_EQUAL(mrf__jobopt_check_decl(&spec), MRF_EINVAL);
    spec.options = decl;
    CU_ASSERT_EQUAL(mrf__jobopt_check_decl(&spec), MRF_OK);
    CU_ASSERT_EQUAL(mrf__check_job_options(&spec), MRF_OK);
    /* typed output declarations */
    static const mrf_column k8 = {"k", MRF_FIELD_INT, 8}, k3 = {"k", MRF_FIELD_INT, 3},
                            f2 = {"f", MRF_FIELD_FLOAT, 2};
    static const mrf_column v2[] = {{"n", MRF_FIELD_UINT, 8}, {"x", MRF_FIELD_FLOAT, 4}, {NULL}};
    static const mrf_column none[] = {{NULL}};
    mrf_job_spec ty = {.name = "t", .key_type = &k8, .value_type = v2};
    CU_ASSERT_EQUAL(mrf__typed_check(&ty), MRF_OK);
    CU_ASSERT_EQUAL(mrf__typed_vsize(v2), 12);
    char kt[32], vt[66];
    size_t kn, vn;
    unsigned char rec[12];
    uint64_t n = 42;
    float x = 0.5f;
    int64_t key = -7;
    memcpy(rec, &n, 8);
    memcpy(rec + 8, &x, 4);
    CU_ASSERT_EQUAL(mrf__typed_text(&ty, &key, 8, rec, 12, kt, &kn, vt, &vn), MRF_OK);
    CU_ASSERT(kn == 2 && memcmp(kt, "-7", 2) == 0);
    CU_ASSERT(vn == 6 && memcmp(vt, "42\t0.5", 6) == 0);
    CU_ASSERT_EQUAL(mrf__typed_text(&ty, &key, 4, rec, 12, kt, &kn, vt, &vn), MRF_EINVAL);
    ty.key_type = &k3;
    CU_ASSERT_EQUAL(mrf__typed_check(&ty), MRF_EINVAL);
    ty.key_type = &f2;
    CU_ASSERT_EQUAL(mrf__typed_check(&ty), MRF_EINVAL);
    ty.key_type = &k8;
    ty.value_type = none;
    CU_ASSERT_EQUAL(mrf__typed_check(&ty), MRF_EINVAL);
    ty.value_type = v2;
    ty.output = MRF_OUTPUT_RAW;
    CU_ASSERT_EQUAL(mrf__typed_check(&ty), MRF_EINVAL);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {{"sizes", test_sizes},
                              {"options", test_options},
                              {"job options", test_job_options},
                              {"memory, spill and compression options", test_memory_options},
                              CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("config", tests);
}
