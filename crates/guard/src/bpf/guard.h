/* Shared by the BPF programs, the host-compiled logic tests and the Rust loader (src/lib.rs:
 * the skeleton's generated types, and parse_event for guard_event). Every struct here is a
 * map key, a map value or a ring buffer record: change one and change its Rust twin in the
 * same commit. */
#ifndef PORTCULLIS_GUARD_H
#define PORTCULLIS_GUARD_H

#include <linux/types.h>

/* guard_config.mode */
#define GUARD_OFF 0u
#define GUARD_REPORT 1u  /* report what would be stopped (Monitor and the learning modes) */
#define GUARD_ENFORCE 2u /* stop it (Secured) */

/* guard_config.flags */
#define GUARD_SCOPED 1u  /* only files below a scope directory count (the agent's --mark-under) */
#define GUARD_DENY_WX 2u /* LSM: refuse anonymous memory that is writable and executable at once */

/* guard_event.what */
#define GUARD_EXEC_UNWATCHED 1u /* a program started from a filesystem the agent does not watch */
#define GUARD_MMAP_EXEC 2u      /* LSM: an executable mapping refused (or reported) */
#define GUARD_MPROTECT_EXEC 3u  /* LSM: memory made executable refused (or reported) */

/* guard_event.why, for the mappings */
#define GUARD_WHY_UNWATCHED 1u /* the file's filesystem is not watched (memfd, an unwatched mount) */
#define GUARD_WHY_UNAPPROVED 2u /* the file was never permitted as code */
#define GUARD_WHY_WRITABLE 3u   /* the file is open for writing in the same descriptor */
#define GUARD_WHY_WX 4u         /* anonymous memory writable and executable at once */

/* What the agent sets: the mode follows the policy's mode. */
struct guard_config {
	__u32 mode;
	__u32 flags;
};

/* A file or directory, as the kernel names it: s_dev (major << 20 | minor) and inode. */
struct guard_inode {
	__u64 dev;
	__u64 ino;
};

/* One stop (or would-be stop), sent to the agent through the ring buffer. */
struct guard_event {
	__u32 tgid;
	__u32 what;
	__u32 mode; /* GUARD_ENFORCE when it was stopped */
	__u32 why;
	__u64 dev;
	__u64 ino;
	char comm[16];
	char path[256]; /* the name execve was given (exec only) */
};

#endif
