/* An application to ringfence: it tries the network, files and child programs from its main
 * thread, a second thread and a forked child, and prints one line per attempt:
 * "<who> <what> ok" or "<who> <what> <errno name>".
 *
 *   fenced run ALLOWED_PORT DENIED_PORT SECRET_DIR   every check, from main, thread and child
 *   fenced reexec ALLOWED_PORT DENIED_PORT SECRET_DIR  execs itself (/proc/self/exe), then main checks
 *   fenced main ALLOWED_PORT DENIED_PORT SECRET_DIR  every check, main thread only
 *   fenced connect ADDR PORT                         one TCP connect
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *name_of(int err)
{
	switch (err) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENOENT: return "ENOENT";
	default: return strerror(err);
	}
}

static void say(const char *who, const char *what, int err)
{
	dprintf(1, "%s %s %s\n", who, what, name_of(err));
}

static int tcp_connect(const char *addr, int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return errno;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	int err = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	close(s);
	return err;
}

static int udp_send(const char *addr, int port)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		return errno;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	int err = sendto(s, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)) == 1 ? 0 : errno;
	close(s);
	return err;
}

static int open_file(const char *dir, const char *file, int flags)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	int fd = open(path, flags);
	if (fd < 0)
		return errno;
	char buf[64];
	int err = 0;
	if ((flags & O_ACCMODE) == O_RDONLY && read(fd, buf, sizeof(buf)) < 0)
		err = errno;
	close(fd);
	return err;
}

static int start(const char *program)
{
	pid_t pid;
	char *argv[] = { (char *)program, "-c", "exit 0", NULL };
	int err = posix_spawn(&pid, program, NULL, NULL, argv, environ);
	if (err)
		return err;
	int status;
	waitpid(pid, &status, 0);
	return 0;
}

struct checks {
	const char *who;
	int allowed_port;
	int denied_port;
	const char *secret;
};

static void *run_checks(void *arg)
{
	const struct checks *c = arg;
	say(c->who, "connect-allowed", tcp_connect("127.0.0.1", c->allowed_port));
	say(c->who, "connect-denied", tcp_connect("127.0.0.2", c->denied_port));
	say(c->who, "udp-denied", udp_send("127.0.0.2", c->denied_port));
	say(c->who, "read-allowed", open_file(c->secret, "shared.txt", O_RDONLY));
	say(c->who, "read-protected", open_file(c->secret, "key.pem", O_RDONLY));
	say(c->who, "write-read-only", open_file(c->secret, "shared.txt", O_WRONLY | O_APPEND));
	say(c->who, "start-sh", start("/bin/sh"));
	say(c->who, "start-true", start("/usr/bin/true"));
	return NULL;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 4 && strcmp(argv[1], "connect") == 0) {
		say("main", "connect", tcp_connect(argv[2], atoi(argv[3])));
		return 0;
	}
	if (argc != 5) {
		fprintf(stderr, "usage: fenced run|reexec|main ALLOWED_PORT DENIED_PORT SECRET_DIR | connect ADDR PORT\n");
		return 2;
	}
	struct checks c = { "main", atoi(argv[2]), atoi(argv[3]), argv[4] };
	if (strcmp(argv[1], "reexec") == 0) {
		char *again[] = { argv[0], "main", argv[2], argv[3], argv[4], NULL };
		execv("/proc/self/exe", again);
		say("main", "reexec", errno);
		return 1;
	}
	run_checks(&c);
	if (strcmp(argv[1], "main") == 0)
		return 0;
	struct checks t = c;
	t.who = "thread";
	pthread_t thread;
	pthread_create(&thread, NULL, run_checks, &t);
	pthread_join(thread, NULL);
	pid_t child = fork();
	if (child == 0) {
		struct checks k = c;
		k.who = "child";
		run_checks(&k);
		_exit(0);
	}
	int status;
	waitpid(child, &status, 0);
	return 0;
}
