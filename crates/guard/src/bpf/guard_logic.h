/* The decisions the guard's BPF programs make, as plain functions of plain data so that the
 * same code is compiled into the kernel programs and into the host-side unit tests
 * (src/bpf/logic_test.c). No helpers, no maps, no kernel types here. */
#ifndef PORTCULLIS_GUARD_LOGIC_H
#define PORTCULLIS_GUARD_LOGIC_H

#include "guard.h"

#ifndef GUARD_INLINE
#define GUARD_INLINE static inline __attribute__((always_inline))
#endif

/* A program being started: 0 lets it run unremarked, otherwise the mode to apply
 * (GUARD_REPORT or GUARD_ENFORCE). `watched`: the agent marked its filesystem, so fanotify
 * judged it already. `in_scope`: below a scope directory (asked only in scoped mode). */
GUARD_INLINE __u32 guard_exec_verdict(const struct guard_config *cfg, int watched, int in_scope)
{
	if (!cfg || cfg->mode == GUARD_OFF || watched)
		return 0;
	if ((cfg->flags & GUARD_SCOPED) && !in_scope)
		return 0;
	return cfg->mode;
}

/* A mapping made executable (mmap with PROT_EXEC, or mprotect adding it): 0 lets it through,
 * otherwise the mode to apply, and *why says what is wrong with it.
 * has_file: the memory is backed by a file (else anonymous memory: JIT compilers need it,
 *   so only a writable-and-executable request is refused, and only with GUARD_DENY_WX).
 * in_scope: the file counts (always, unless scoped mode and not below a scope directory).
 * watched: its filesystem is marked (a memfd or an unwatched mount is not).
 * approved: the agent permitted this file as code.
 * writable: the descriptor mapping it was opened for writing (it could be changed after
 *   its approval without a new open). */
GUARD_INLINE __u32 guard_map_verdict(const struct guard_config *cfg, int has_file, int in_scope, int watched,
				    int approved, int writable, int wants_write, __u32 *why)
{
	*why = 0;
	if (!cfg || cfg->mode == GUARD_OFF)
		return 0;
	if (!has_file) {
		if (wants_write && (cfg->flags & GUARD_DENY_WX)) {
			*why = GUARD_WHY_WX;
			return cfg->mode;
		}
		return 0;
	}
	if ((cfg->flags & GUARD_SCOPED) && !in_scope)
		return 0;
	if (!watched)
		*why = GUARD_WHY_UNWATCHED;
	else if (writable)
		*why = GUARD_WHY_WRITABLE;
	else if (!approved)
		*why = GUARD_WHY_UNAPPROVED;
	else
		return 0;
	return cfg->mode;
}

/* The kernel's device number for major:minor (what s_dev holds). */
GUARD_INLINE __u64 guard_kernel_dev(__u32 major, __u32 minor)
{
	return ((__u64)major << 20) | minor;
}

#endif
