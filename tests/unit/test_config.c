/* Configuration parsing: every documented variable, good and bad values, and the promise
 * that a bad value yields exactly one warning naming the variable and the default. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "endpoint.h"

static const char *env_table[16][2];
static char warnings[8][512];
static int nwarnings;

static const char *fake_env(const char *name)
{
    for (int i = 0; i < 16 && env_table[i][0]; i++)
        if (strcmp(env_table[i][0], name) == 0)
            return env_table[i][1];
    return NULL;
}

static void fake_warn(const char *line)
{
    if (nwarnings < 8)
        strncpy(warnings[nwarnings], line, sizeof(warnings[0]) - 1);
    nwarnings++;
}

static int setup(void **state)
{
    (void)state;
    memset(env_table, 0, sizeof(env_table));
    memset(warnings, 0, sizeof(warnings));
    nwarnings = 0;
    return 0;
}

static void set_env(int i, const char *name, const char *value)
{
    env_table[i][0] = name;
    env_table[i][1] = value;
}

/* Proves the defaults when nothing is set. */
static void test_defaults(void **state)
{
    struct pyprof_config c;
    (void)state;
    assert_int_equal(pyprof_config_load(&c, fake_env, fake_warn), 0);
    assert_int_equal(c.interval_ns, 10000000);
    assert_int_equal(c.mode, PYPROF_MODE_CPU);
    assert_int_equal(c.start, 1);
    assert_int_equal(c.max_stacks, 65536);
    assert_int_equal(c.log_level, PYPROF_LOG_WARN);
    assert_string_equal(c.output, "");
    char expect[64];
    snprintf(expect, sizeof(expect), "/tmp/pyprof-%u", (unsigned)getuid());
    assert_string_equal(c.dir, expect);
}

/* Proves that good values of every variable are taken as given. */
static void test_good_values(void **state)
{
    struct pyprof_config c;
    (void)state;
    set_env(0, "PYPROF_INTERVAL", "500us");
    set_env(1, "PYPROF_MODE", "wall");
    set_env(2, "PYPROF_START", "0");
    set_env(3, "PYPROF_MAX_STACKS", "1000");
    set_env(4, "PYPROF_LOG", "debug");
    set_env(5, "PYPROF_OUTPUT", "/tmp/out.folded");
    set_env(6, "PYPROF_DIR", "/tmp/somewhere");
    assert_int_equal(pyprof_config_load(&c, fake_env, fake_warn), 0);
    assert_int_equal(c.interval_ns, 500000);
    assert_int_equal(c.mode, PYPROF_MODE_WALL);
    assert_int_equal(c.start, 0);
    assert_int_equal(c.max_stacks, 1000);
    assert_int_equal(c.log_level, PYPROF_LOG_DEBUG);
    assert_string_equal(c.output, "/tmp/out.folded");
    assert_string_equal(c.dir, "/tmp/somewhere");
}

/* Proves XDG_RUNTIME_DIR is used when PYPROF_DIR is not set. */
static void test_xdg_dir(void **state)
{
    struct pyprof_config c;
    (void)state;
    set_env(0, "XDG_RUNTIME_DIR", "/run/user/1000");
    pyprof_config_load(&c, fake_env, fake_warn);
    assert_string_equal(c.dir, "/run/user/1000/pyprof");
}

/* Proves each bad value gives one warning naming the variable and the default used. */
static void test_bad_values_warn_once(void **state)
{
    static const struct { const char *name, *value, *fallback; } cases[] = {
        {"PYPROF_INTERVAL", "fast", "using 10ms"},
        {"PYPROF_INTERVAL", "10", "using 10ms"},
        {"PYPROF_INTERVAL", "-5ms", "using 10ms"},
        {"PYPROF_INTERVAL", "1us", "using 10ms"},
        {"PYPROF_INTERVAL", "10 ms", "using 10ms"},
        {"PYPROF_INTERVAL", "1e400s", "using 10ms"},
        {"PYPROF_MODE", "gpu", "using cpu"},
        {"PYPROF_START", "yes", "using 1"},
        {"PYPROF_MAX_STACKS", "-1", "using 65536"},
        {"PYPROF_MAX_STACKS", "12abc", "using 65536"},
        {"PYPROF_MAX_STACKS", "99999999999999999999", "using 65536"},
        {"PYPROF_LOG", "loud", "using warn"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pyprof_config c;
        setup(NULL);
        set_env(0, cases[i].name, cases[i].value);
        assert_int_equal(pyprof_config_load(&c, fake_env, fake_warn), 1);
        assert_int_equal(nwarnings, 1);
        assert_non_null(strstr(warnings[0], cases[i].name));
        assert_non_null(strstr(warnings[0], cases[i].fallback));
        assert_int_equal(c.interval_ns, 10000000);
        assert_int_equal(c.mode, PYPROF_MODE_CPU);
        assert_int_equal(c.start, 1);
        assert_int_equal(c.max_stacks, 65536);
    }
}

/* Proves a hostile, very long value is cut in the warning instead of flooding stderr. */
static void test_long_value_is_cut(void **state)
{
    static char big[10000];
    struct pyprof_config c;
    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    set_env(0, "PYPROF_MODE", big);
    set_env(1, "PYPROF_OUTPUT", big);
    assert_int_equal(pyprof_config_load(&c, fake_env, fake_warn), 2);
    assert_true(strlen(warnings[0]) < 200);
    assert_string_equal(c.output, "");
}

/* Proves the duration parser's units and rejections. */
static void test_durations(void **state)
{
    uint64_t ns;
    (void)state;
    assert_int_equal(pyprof_parse_duration("1s", &ns), 0);
    assert_int_equal(ns, 1000000000ull);
    assert_int_equal(pyprof_parse_duration("2.5ms", &ns), 0);
    assert_int_equal(ns, 2500000ull);
    assert_int_equal(pyprof_parse_duration("250000ns", &ns), 0);
    assert_int_equal(ns, 250000ull);
    assert_int_equal(pyprof_parse_duration("", &ns), -EINVAL);
    assert_int_equal(pyprof_parse_duration("ms", &ns), -EINVAL);
    assert_int_equal(pyprof_parse_duration("5m", &ns), 0);
    assert_int_equal(ns, 300000000000ull);
    assert_int_equal(pyprof_parse_duration("5h", &ns), -EINVAL);
    assert_int_equal(pyprof_parse_duration("nan ms", &ns), -EINVAL);
    assert_int_equal(pyprof_parse_duration(NULL, &ns), -EINVAL);
}

/* Proves socket names parse back to pids and reject look-alikes. */
static void test_socket_names(void **state)
{
    pid_t pid;
    char path[PYPROF_SOCKET_PATH_MAX];
    (void)state;
    assert_int_equal(pyprof_socket_name_pid("pyprof.1234.sock", &pid), 0);
    assert_int_equal(pid, 1234);
    assert_int_equal(pyprof_socket_name_pid("pyprof..sock", &pid), -EINVAL);
    assert_int_equal(pyprof_socket_name_pid("pyprof.12a.sock", &pid), -EINVAL);
    assert_int_equal(pyprof_socket_name_pid("pyprof.0.sock", &pid), -EINVAL);
    assert_int_equal(pyprof_socket_name_pid("other.12.sock", &pid), -EINVAL);
    assert_int_equal(pyprof_socket_path("/tmp/d", 42, path, sizeof(path)), 0);
    assert_string_equal(path, "/tmp/d/pyprof.42.sock");
    char longdir[200];
    memset(longdir, 'd', sizeof(longdir) - 1);
    longdir[sizeof(longdir) - 1] = '\0';
    assert_int_equal(pyprof_socket_path(longdir, 42, path, sizeof(path)), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_good_values, setup),
        cmocka_unit_test_setup(test_xdg_dir, setup),
        cmocka_unit_test_setup(test_bad_values_warn_once, setup),
        cmocka_unit_test_setup(test_long_value_is_cut, setup),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_socket_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
