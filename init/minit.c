// minit: the smallest init that can run the activate core as PID 1. It keeps fds 0-2 open,
// starts the core in its own session, reaps every orphan, forwards signals to the core's process
// group and, when the core exits, syncs and reboots (or powers off). Spec: init/README.md.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// Build-time settings; init/CMakeLists.txt passes them as -D flags.
#ifndef MINIT_VERSION
#define MINIT_VERSION "0"
#endif
#ifndef MINIT_DEFAULT_CORE
#define MINIT_DEFAULT_CORE "/core"
#endif
#ifndef MINIT_FAILURE_DELAY
#define MINIT_FAILURE_DELAY 30
#endif
#ifndef MINIT_CLEAN_EXIT_RESTART
#define MINIT_CLEAN_EXIT_RESTART 0
#endif
// Test builds only: refuse to run unless in a child PID namespace, where reboot(2) merely ends
// the namespace (kernel/pid_namespace.c, reboot_pid_ns) instead of the machine.
#ifndef MINIT_REQUIRE_CHILD_PIDNS
#define MINIT_REQUIRE_CHILD_PIDNS 0
#endif

// Inode of the initial PID namespace (include/linux/proc_ns.h, PROC_PID_INIT_INO); every other
// PID namespace gets a dynamically allocated one.
#define PROC_PID_INIT_INO 0xEFFFFFFCU

extern char** environ;

static const char* core_path;

// Guarantees that nothing we or the core write goes to a random file that happens to land on
// fd 0-2. The kernel normally opens /dev/console for init, but not when it is missing from the
// initramfs.
static void open_std_fds(void) {
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) continue;
        int c = open("/dev/console", O_RDWR | O_NOCTTY);
        if (c < 0) c = open("/dev/null", O_RDWR);
        if (c >= 0 && c != fd) {
            dup2(c, fd);
            close(c);
        }
    }
}

static int in_child_pid_namespace(void) {
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) < 0) return 0;
    return st.st_ino != PROC_PID_INIT_INO;
}

// Reaps every exited process; returns 1 and fills *status once the core itself was reaped.
static int reap(pid_t core, int* status) {
    int found = 0;
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == core) {
            *status = st;
            found = 1;
        }
    }
    return found;
}

static void forward(pid_t core, int sig) {
    // Before the child's setsid() the group does not exist yet; the core alone gets it then.
    if (kill(-core, sig) < 0 && errno == ESRCH) kill(core, sig);
}

// Keeps reaping while the console shows why the core failed.
static void linger(const sigset_t* all, int seconds) {
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += seconds;
    int unused;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct timespec left = {end.tv_sec - now.tv_sec, end.tv_nsec - now.tv_nsec};
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        if (left.tv_sec < 0) return;
        if (sigtimedwait(all, NULL, &left) == SIGCHLD) reap(-1, &unused);
    }
}

static void start_core(const sigset_t* none) {
    setsid();
    sigprocmask(SIG_SETMASK, none, NULL);
    char* argv[] = {(char*)core_path, NULL};
    execve(core_path, argv, environ);
    dprintf(2, "minit: cannot execute %s: %s\n", core_path, strerror(errno));
    _exit(1);
}

int main(void) {
    // First, before touching anything: started by hand on a running system, PID 1 is someone
    // else and the reboot(2) below would take the whole machine down.
    if (getpid() != 1) {
        dprintf(2, "minit: must run as PID 1 (this is PID %d); not starting anything\n",
                (int)getpid());
        return 1;
    }
    open_std_fds();

    if (MINIT_REQUIRE_CHILD_PIDNS && !in_child_pid_namespace()) {
        dprintf(2, "minit: test build outside a child PID namespace; not starting anything\n");
        return 1;
    }

    // Every signal is blocked from now on and taken with sigwaitinfo(). Whatever our parent
    // ignored must not reach the core (and an ignored SIGCHLD would auto-reap the core and lose
    // its status), so all dispositions go back to the default, which blocking keeps harmless.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);

    const char* env_core = getenv("MINIT_CORE");
    core_path = env_core && *env_core ? env_core : MINIT_DEFAULT_CORE;
    dprintf(2, "minit %s: starting %s\n", MINIT_VERSION, core_path);

    int status = 1 << 8;  // exit status 1, reported if fork fails
    pid_t core = fork();
    if (core == 0) start_core(&none);
    if (core < 0) {
        dprintf(2, "minit: cannot fork: %s\n", strerror(errno));
    } else {
        for (;;) {
            siginfo_t info;
            int sig = sigwaitinfo(&all, &info);
            if (sig < 0) continue;
            if (sig != SIGCHLD) {
                forward(core, sig);
            } else if (reap(core, &status)) {
                break;
            }
        }
    }

    int code;
    if (WIFSIGNALED(status)) {
        code = 128 + WTERMSIG(status);
        dprintf(2, "minit: core %s killed by signal %d, status %d\n", core_path, WTERMSIG(status),
                code);
    } else {
        code = WEXITSTATUS(status);
        dprintf(2, "minit: core %s exited with status %d\n", core_path, code);
    }
    sync();

    int restart = code != 0 || MINIT_CLEAN_EXIT_RESTART;
    if (code != 0 && MINIT_FAILURE_DELAY > 0) {
        dprintf(2, "minit: restarting in %d s\n", MINIT_FAILURE_DELAY);
        linger(&all, MINIT_FAILURE_DELAY);
    }
    dprintf(2, "minit: %s\n", restart ? "restarting" : "powering off");

    if (MINIT_REQUIRE_CHILD_PIDNS && !in_child_pid_namespace()) {
        dprintf(2, "minit: test build outside a child PID namespace; not rebooting\n");
    } else {
        // RB_AUTOBOOT and RB_POWER_OFF are LINUX_REBOOT_CMD_RESTART and _POWER_OFF.
        reboot(restart ? RB_AUTOBOOT : RB_POWER_OFF);
        dprintf(2, "minit: reboot failed: %s\n", strerror(errno));
    }
    // PID 1 must never exit (the kernel panics); keep reaping until someone pulls the plug.
    for (;;) {
        if (sigwaitinfo(&all, NULL) == SIGCHLD) reap(-1, &status);
    }
}
