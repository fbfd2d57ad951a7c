/* Host-side entry points to fence_logic.h, for the Rust unit tests: the same decisions the
 * kernel programs make (the LSM ones included, which cannot load on every machine). */
#include "fence_logic.h"

int fence_test_net_verdict(const struct fence_tag *tag, const struct fence_profile *profile,
			   const struct fence_ports *match, __u16 port, int *report)
{
	return fence_net_verdict(tag, profile, match, port, report);
}

void fence_test_net_key_v4(struct fence_net_key *key, __u32 id, __u32 addr_be)
{
	fence_net_key_v4(key, id, addr_be);
}

int fence_test_fork_is_process(__u32 parent, __u32 child)
{
	return fence_fork_is_process(parent, child);
}

int fence_test_group_dead(int live)
{
	return fence_group_dead(live);
}

const struct fence_tag *fence_test_exec_tag(const struct fence_tag *current, const struct fence_tag *of_exe)
{
	return fence_exec_tag(current, of_exe);
}

__u64 fence_test_kernel_dev(__u32 major, __u32 minor)
{
	return fence_kernel_dev(major, minor);
}
