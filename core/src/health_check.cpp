// Health checks as child processes (see health_check.hpp). The child gets its own process group
// so that a timeout kills everything it started; the parent waits on a pidfd (pidfd_open(2),
// Linux 5.3) and the output pipe together, so neither a silent check nor a chatty one delays
// the verdict past its limit.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/fd.hpp>
#include <activate/health_check.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

namespace activate {

namespace {

using Clock = std::chrono::steady_clock;

// Lines longer than this are logged in pieces, so one endless line cannot grow memory.
constexpr size_t kMaxLine = 4096;

class OutputLines {
  public:
    OutputLines(const Log& log, std::string prefix) : log_(log), prefix_(std::move(prefix)) {}
    void add(const char* data, size_t size) {
        for (size_t i = 0; i < size; ++i) {
            if (data[i] == '\n') {
                flush();
                continue;
            }
            pending_ += data[i];
            if (pending_.size() >= kMaxLine) flush();
        }
    }
    void flush() {
        if (!pending_.empty()) log_.info(prefix_ + pending_);
        pending_.clear();
    }

  private:
    const Log& log_;
    std::string prefix_;
    std::string pending_;
};

// Reads what is available; false at end of file or on an error other than EAGAIN/EINTR.
bool read_some(int fd, OutputLines& lines) {
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
        lines.add(buf, static_cast<size_t>(n));
        return true;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
}

[[noreturn]] void exec_child(const std::vector<std::string>& command, pid_t parent, int out_fd,
                             int error_fd) {
    // A new process group: the parent kills the group, reaching whatever the check forked.
    ::setpgid(0, 0);
    // A killed assess (kill -9, an OOM kill) takes the check with it; checked again after the
    // call because the parent may already be gone.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || ::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(out_fd, STDOUT_FILENO) < 0 ||
        ::dup2(out_fd, STDERR_FILENO) < 0) {
        const int err = errno;
        (void)!::write(error_fd, &err, sizeof err);
        ::_exit(127);
    }
    // Signals the engine ignores or blocks must not be inherited that way by the check.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    std::vector<char*> argv;
    for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    const int err = errno;
    (void)!::write(error_fd, &err, sizeof err);
    ::_exit(127);
}

// Only ever the group, and only while its leader is not yet reaped (so the id is still ours).
void kill_group(pid_t group) { ::kill(-group, SIGKILL); }

std::string quoted(const std::string& name) { return "check \"" + name + "\""; }

}  // namespace

std::string describe_duration(std::chrono::milliseconds duration) {
    const int64_t ms = duration.count();
    if (ms % 60000 == 0 && ms >= 60000) return std::to_string(ms / 60000) + " min";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ms) / 1000.0);
    return buf;
}

Status run_health_check(const HealthCheck& check, std::chrono::milliseconds limit,
                        const std::string& limit_text, const Log& log) {
    const std::string who = quoted(check.name);
    if (check.command.empty()) return Error(ErrorKind::policy, who + " has no command");
    int out_pipe[2], error_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0)
        return errno_error(ErrorKind::activation, who + ": creating its output pipe");
    UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
    if (::pipe2(error_pipe, O_CLOEXEC) != 0)
        return errno_error(ErrorKind::activation, who + ": creating a pipe");
    UniqueFd error_read(error_pipe[0]), error_write(error_pipe[1]);

    log.info("running " + who + " (" +
             [&] {
                 std::string line;
                 for (const std::string& a : check.command) line += (line.empty() ? "" : " ") + a;
                 return line;
             }() +
             "), at most " + describe_duration(limit));
    const Clock::time_point end = Clock::now() + limit;
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return errno_error(ErrorKind::activation, who + ": fork");
    if (pid == 0) exec_child(check.command, parent, out_write.get(), error_write.get());
    ::setpgid(pid, pid);  // also here: the group must exist before we may have to kill it
    out_write.reset();
    error_write.reset();

    // exec either closes the error pipe (success) or the child writes its errno into it.
    int exec_errno = 0;
    ssize_t got;
    do got = ::read(error_read.get(), &exec_errno, sizeof exec_errno);
    while (got < 0 && errno == EINTR);
    if (got == sizeof exec_errno) {
        ::waitpid(pid, nullptr, 0);
        return Error(ErrorKind::activation,
                     who + " could not be started: " + std::strerror(exec_errno));
    }

    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    OutputLines lines(log, check.name + ": ");
    ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
    bool output_open = true, exited = false, timed_out = false;
    int status = 0;
    while (!exited) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd fds[2] = {{pidfd.get(), POLLIN, 0}, {out_read.get(), POLLIN, 0}};
        // Without a pidfd (older kernels), poll the output and check for the exit in slices.
        const int wait_ms = pidfd ? static_cast<int>(std::min<int64_t>(left.count(), 1 << 30))
                                  : static_cast<int>(std::min<int64_t>(left.count(), 50));
        const int n = ::poll(pidfd ? fds : fds + 1,
                             pidfd ? (output_open ? 2 : 1) : (output_open ? 1 : 0), wait_ms);
        if (n < 0 && errno != EINTR) {
            kill_group(pid);
            ::waitpid(pid, nullptr, 0);
            return errno_error(ErrorKind::activation, who + ": waiting for it");
        }
        if (output_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
            output_open = read_some(out_read.get(), lines);
        // WNOWAIT: the leader stays a zombie, so its pid (the group id) cannot be reused before
        // the group is killed below.
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid)
            exited = true;
    }
    // After the check's end its output may still sit in the pipe: read what is there. A child it
    // left behind may hold the pipe open, so no waiting for end of file.
    while (output_open && read_some(out_read.get(), lines)) {
        pollfd fd{out_read.get(), POLLIN, 0};
        if (::poll(&fd, 1, 0) <= 0) break;
    }
    lines.flush();
    // On a timeout the check goes; after its end, whatever it left running in its group.
    kill_group(pid);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }

    if (timed_out) return Error(ErrorKind::activation, who + " " + limit_text);
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 0) {
            log.info(who + " passed");
            return {};
        }
        return Error(ErrorKind::activation,
                     who + " exited with status " + std::to_string(WEXITSTATUS(status)));
    }
    if (WIFSIGNALED(status))
        return Error(ErrorKind::activation, who + " was killed by signal " +
                                                std::to_string(WTERMSIG(status)) + " (" +
                                                strsignal(WTERMSIG(status)) + ")");
    return Error(ErrorKind::activation, who + " ended with wait status " + std::to_string(status));
}

}  // namespace activate
