/* Host-side entry points to guard_logic.h, for the Rust unit tests: the same decisions the
 * kernel programs make (the LSM ones included, which cannot load on every machine). */
#include "guard_logic.h"

__u32 guard_test_exec_verdict(const struct guard_config *cfg, int watched, int in_scope)
{
	return guard_exec_verdict(cfg, watched, in_scope);
}

__u32 guard_test_map_verdict(const struct guard_config *cfg, int has_file, int in_scope, int watched, int approved,
			     int writable, int wants_write, __u32 *why)
{
	return guard_map_verdict(cfg, has_file, in_scope, watched, approved, writable, wants_write, why);
}
