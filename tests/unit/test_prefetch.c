/* The per-tick prefetch (preload/prefetch.c) on this process's own memory, read with the
 * real process_vm_readv: what a tick remembers is read again, in one call, at the next
 * tick's start and served from that copy; a multi-range read is served whole or not at all;
 * a range that became unreadable (an unmapped page) costs only itself; nothing is served
 * that was not prefetched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "prefetch.h"
#include "saferead.h"

static struct pyprof_prefetch *pf;
static uint8_t *pages;   /* three pages: readable, unmapped (hole), readable */
static size_t page;

static int setup(void **state)
{
    (void)state;
    page = (size_t)sysconf(_SC_PAGESIZE);
    pages = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED || pyprof_saferead_init() != 0)
        return -1;
    for (size_t i = 0; i < 3 * page; i++)
        pages[i] = (uint8_t)(i * 7);
    munmap(pages + page, page);
    pf = pyprof_prefetch_new();
    return pf ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pyprof_prefetch_free(pf);
    munmap(pages, page);
    munmap(pages + 2 * page, page);
    return 0;
}

static uintptr_t at(size_t off)
{
    return (uintptr_t)(pages + off);
}

/* Served from the copy: the value as it was at begin(), and no miss counted. */
static void test_remembered_reads_come_from_the_copy(void **state)
{
    (void)state;
    uint8_t got[64];
    pyprof_prefetch_begin(pf);   /* start empty */
    assert_int_equal(pyprof_prefetch_read1(pf, got, at(100), 64, 1), 0);   /* a miss */
    assert_memory_equal(got, pages + 100, 64);
    pyprof_prefetch_begin(pf);
    uint64_t misses = pyprof_prefetch_misses(pf);
    pages[110] ^= 0xff;   /* changed after the tick's start: the copy still has the old byte */
    assert_int_equal(pyprof_prefetch_read1(pf, got, at(100), 64, 1), 0);
    assert_int_equal(pyprof_prefetch_misses(pf), misses);
    assert_int_equal(got[10], (uint8_t)(pages[110] ^ 0xff));
    /* a part of a prefetched range is served too */
    assert_int_equal(pyprof_prefetch_read1(pf, got, at(120), 16, 1), 0);
    assert_int_equal(pyprof_prefetch_misses(pf), misses);
    assert_memory_equal(got, pages + 120, 16);
    pages[110] ^= 0xff;
}

/* A range reaching past what was prefetched is read from memory, as are ranges not
 * remembered at the previous tick (and a range remembered once and not used is dropped). */
static void test_what_was_not_prefetched_is_read_now(void **state)
{
    (void)state;
    uint8_t got[64];
    pyprof_prefetch_begin(pf);
    pyprof_prefetch_read1(pf, got, at(0), 32, 1);
    pyprof_prefetch_begin(pf);
    uint64_t misses = pyprof_prefetch_misses(pf);
    assert_int_equal(pyprof_prefetch_read1(pf, got, at(16), 32, 0), 0);   /* 16 bytes past */
    assert_int_equal(pyprof_prefetch_misses(pf), misses + 1);
    assert_memory_equal(got, pages + 16, 32);
    pyprof_prefetch_begin(pf);   /* nothing was remembered: nothing prefetched */
    assert_int_equal(pyprof_prefetch_copy(pf, got, at(0), 8), -ENOENT);
}

/* Two ranges are served from the copy only together: one prefetched and one not means
 * both are read now, in one call, so that both are of one moment. */
static void test_several_ranges_are_served_whole_or_not_at_all(void **state)
{
    (void)state;
    uint8_t a[8], b[8];
    struct iovec local[2] = {{a, 8}, {b, 8}};
    struct iovec remote[2] = {{pages + 200, 8}, {pages + 900, 8}};
    pyprof_prefetch_begin(pf);
    pyprof_prefetch_read1(pf, a, at(200), 8, 1);   /* only the first is remembered */
    pyprof_prefetch_begin(pf);
    pages[200] ^= 0xff;   /* the copy holds the old value, memory the new one */
    uint64_t misses = pyprof_prefetch_misses(pf);
    assert_int_equal(pyprof_prefetch_read(pf, local, remote, 2, 1), 0);
    assert_int_equal(pyprof_prefetch_misses(pf), misses + 1);
    assert_int_equal(a[0], pages[200]);   /* read now, not from the copy */
    assert_memory_equal(b, pages + 900, 8);
    pages[200] ^= 0xff;
    pyprof_prefetch_begin(pf);   /* both remembered now: both served */
    misses = pyprof_prefetch_misses(pf);
    assert_int_equal(pyprof_prefetch_read(pf, local, remote, 2, 1), 0);
    assert_int_equal(pyprof_prefetch_misses(pf), misses);
}

/* An unreadable range (the page was unmapped) is skipped at begin(): the ranges after it
 * are still prefetched, and reading it fails cleanly. */
static void test_an_unreadable_range_costs_only_itself(void **state)
{
    (void)state;
    uint8_t got[32];
    pyprof_prefetch_begin(pf);
    pyprof_prefetch_remember(pf, at(64), 32);
    pyprof_prefetch_remember(pf, at(page + 64), 32);        /* the hole */
    pyprof_prefetch_remember(pf, at(2 * page + 64), 32);
    pyprof_prefetch_begin(pf);
    assert_int_equal(pyprof_prefetch_copy(pf, got, at(64), 32), 0);
    assert_memory_equal(got, pages + 64, 32);
    assert_int_equal(pyprof_prefetch_copy(pf, got, at(page + 64), 32), -ENOENT);
    assert_int_equal(pyprof_prefetch_copy(pf, got, at(2 * page + 64), 32), 0);
    assert_memory_equal(got, pages + 2 * page + 64, 32);
    assert_int_equal(pyprof_prefetch_read1(pf, got, at(page + 64), 32, 1), -EFAULT);
}

/* Overlapping and repeated ranges merge; every one of them is served. */
static void test_overlapping_ranges_merge(void **state)
{
    (void)state;
    uint8_t got[512];
    pyprof_prefetch_begin(pf);
    for (int i = 0; i < 50; i++)
        pyprof_prefetch_remember(pf, at(300 + (size_t)i * 7), 64);
    pyprof_prefetch_remember(pf, at(300), 64);
    pyprof_prefetch_begin(pf);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(pyprof_prefetch_copy(pf, got, at(300 + (size_t)i * 7), 64), 0);
        assert_memory_equal(got, pages + 300 + i * 7, 64);
    }
    assert_int_equal(pyprof_prefetch_copy(pf, got, at(300), 7 * 49 + 64), 0);
}

/* Without a prefetch (NULL) a read is a plain read. */
static void test_null_is_a_plain_read(void **state)
{
    (void)state;
    uint8_t got[16];
    assert_int_equal(pyprof_prefetch_read1(NULL, got, at(40), 16, 1), 0);
    assert_memory_equal(got, pages + 40, 16);
    assert_int_equal(pyprof_prefetch_read1(NULL, got, at(page), 16, 1), -EFAULT);
    assert_int_equal(pyprof_prefetch_copy(NULL, got, at(40), 16), -ENOENT);
    pyprof_prefetch_remember(NULL, at(40), 16);   /* no-op, no crash */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remembered_reads_come_from_the_copy),
        cmocka_unit_test(test_what_was_not_prefetched_is_read_now),
        cmocka_unit_test(test_several_ranges_are_served_whole_or_not_at_all),
        cmocka_unit_test(test_an_unreadable_range_costs_only_itself),
        cmocka_unit_test(test_overlapping_ranges_merge),
        cmocka_unit_test(test_null_is_a_plain_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
