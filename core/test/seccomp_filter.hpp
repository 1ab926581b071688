// A seccomp filter for tests that must prove a system call is never made (or see how code copes
// with one that fails): installed in a forked child, since a filter is inherited across fork
// and execve and can never be removed. x86-64 only, like the project.
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <initializer_list>

namespace activate::test {

// Gives system call `nr` the seccomp `action` in the calling process: SECCOMP_RET_KILL_PROCESS
// (the call never runs; the process dies of SIGSYS) or SECCOMP_RET_ERRNO | errno. Every other
// call is allowed; a call from another ABI (x32, i386) kills. False if it could not be installed.
inline bool deny_syscall(long nr, unsigned action) {
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

// Runs body() in a forked child under deny_syscall(nr, action) and returns the child's wait
// status; exit status 125 means the filter could not be installed (body() did not run).
template <class Body>
int wait_status_with_syscall_denied(long nr, unsigned action, Body body) {
    const pid_t child = ::fork();
    if (child == 0) {
        if (!deny_syscall(nr, action)) ::_exit(125);
        ::_exit(body());
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

// As wait_status_with_syscall_denied(), with every call in `nrs` given `action` (one filter
// each: stacked filters all apply, the strictest action wins).
template <class Body>
int wait_status_with_syscalls_denied(std::initializer_list<long> nrs, unsigned action, Body body) {
    const pid_t child = ::fork();
    if (child == 0) {
        for (long nr : nrs)
            if (!deny_syscall(nr, action)) ::_exit(125);
        ::_exit(body());
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

}  // namespace activate::test
