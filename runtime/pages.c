/*
 * pages.c — big blocks straight from the kernel, for what a model holds once: the
 * compiler's copies of the weights as it imports them, and the JIT's persistent block (the
 * packed weights). Zeroed by the kernel as it maps them (no memset pass), and backed by
 * 2 MiB pages where transparent huge pages are on request (madvise, Debian's default), so
 * filling a block takes one page fault per 2 MiB instead of 512. In this machine's VM each
 * fault of a 4 KiB page cost several microseconds: importing ViT-B (346 MB of weights,
 * three copies of them on their way into the graph) spent most of its time in faults.
 *
 * Buffers allocated at every run do not come from here: a caller who keeps freed memory
 * with glibc's malloc tunables (as bench/run.sh does) would lose that for them.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include "runtime/rt.h"

#include <stdint.h>
#include <sys/mman.h>

enum { HUGE_PAGE = 2 << 20 };

void *kiln_rt_pages_alloc(size_t size) {
    if (size == 0 || size > SIZE_MAX - 2 * (size_t)HUGE_PAGE)
        return NULL;
    size_t len = (size + 4095) / 4096 * 4096;
    /* map a huge page more, to cut the block out at a 2 MiB boundary */
    unsigned char *p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    size_t head = (HUGE_PAGE - (uintptr_t)p % HUGE_PAGE) % HUGE_PAGE;
    if (head)
        munmap(p, head);
    munmap(p + head + len, HUGE_PAGE - head); /* head < HUGE_PAGE: a tail is always left */
    p += head;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* advice: where refused, 4 KiB pages serve as well */
#endif
    return p;
}

void kiln_rt_pages_free(void *p, size_t size) {
    if (p)
        munmap(p, (size + 4095) / 4096 * 4096);
}
